# R2Gen's IU X-ray recipe: Adam (amsgrad, L2 weight decay 5e-5), lr 5e-5 for
# the visual extractor and 1e-4 for the rest, StepLR(50, 0.1), 100 epochs,
# gradients clipped by value at 0.1. (The configs keep the best val BLEU-4
# checkpoint: default_hooks live in default_runtime.py, so they set it.)
optim_wrapper = dict(
    type='OptimWrapper',
    # frozen parameters (PartialFreeze / model.freeze) stay out of Adam
    constructor='TrainableOptimWrapperConstructor',
    optimizer=dict(type='Adam', lr=1e-4, weight_decay=5e-5, amsgrad=True),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.5)}),
    clip_grad=dict(type='value', clip_value=0.1))
param_scheduler = dict(type='StepLR', by_epoch=True, step_size=50, gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# R2Gen trains with batch 16 on one GPU; scale the lr with the total batch
auto_scale_lr = dict(base_batch_size=16, enable=False)
