# ViT-B/16 (ImageNet-21k weights) fine-tuned at 224 px with the ViT-pytorch
# recipe: the baseline TRAR-ViT is compared with.
_base_ = [
    '../_base_/models/vit-base-p16_in21k-pre.py',
    '../_base_/datasets/imagenet_vit-224.py',
    '../_base_/schedules/vit_finetune_sgd_cosine.py',
    '../_base_/default_runtime.py',
]
# iteration-based logging and checkpoints (default_runtime counts epochs)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=800 * 8,
        max_keep_ckpts=2))

# 20000 optimizer steps on ImageNet (ViT-pytorch), 8 iterations each
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
        end=20000 * 8),
]
train_cfg = dict(max_iters=20000 * 8)
