# ViT-B/16 fine-tuned end to end (lr 5e-5 for the backbone as R2Gen's visual
# extractor, 1e-4 for the rest).
_base_ = ['./r2gen_vit-base-p16_1xb16-frozen_iu-xray.py']
model = dict(freeze=None)
