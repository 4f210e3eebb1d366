# jeonsworld/ViT-pytorch fine-tuning recipe (used by TRAR-ViT): SGD momentum
# 0.9, lr 3e-2, no weight decay, gradient-norm clip 1.0, batch 512 as 64 per
# iteration x 8 accumulated, 500 warmup steps then cosine decay to 0 over
# 10000 steps. mmengine steps the schedulers every *iteration* (micro-batch),
# so step counts are multiplied by the accumulation factor 8.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=3e-2, momentum=0.9, weight_decay=0.),
    clip_grad=dict(max_norm=1.0),
    accumulative_counts=8)

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1. / 4000,
        by_epoch=False,
        begin=0,
        end=500 * 8),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.,
        by_epoch=False,
        begin=500 * 8,
        end=10000 * 8),
]

train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=10000 * 8, val_interval=800 * 8)
val_cfg = dict()
test_cfg = dict()

log_processor = dict(by_epoch=False)
# 64 per iteration x 8 accumulated
auto_scale_lr = dict(base_batch_size=512)
