# R2Gen's MIMIC-CXR recipe (its train_mimic_cxr.sh): as IU X-ray but 30 epochs
# and StepLR(step_size=1, gamma=0.8).
_base_ = ['./r2gen_iu_xray.py']
param_scheduler = dict(step_size=1, gamma=0.8)
train_cfg = dict(max_epochs=30)
