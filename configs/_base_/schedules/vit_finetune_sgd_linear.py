# The ViT-pytorch recipe with its other decay (--decay_type linear): linear
# decay to 0 after the 500 warmup steps.
_base_ = ['./vit_finetune_sgd_cosine.py']
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1. / 4000,
        by_epoch=False,
        begin=0,
        end=500 * 8),
    dict(
        type='LinearLR',
        start_factor=1.0,
        end_factor=0.,
        by_epoch=False,
        begin=500 * 8,
        end=10000 * 8),
]
