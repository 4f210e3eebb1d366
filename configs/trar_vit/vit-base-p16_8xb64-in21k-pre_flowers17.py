# ViT-B/16 (ImageNet-21k weights) fine-tuned on Flowers-17 (split 1) at 224 px
# with the ViT-pytorch recipe (SGD 0.9, lr 3e-2, no weight decay, clip 1.0,
# batch 512 = 64 x 8 accumulated). Flowers-17 has 680 training images, so the
# 10000 steps of CIFAR become 500 (50 warmup): still ~370 epochs.
_base_ = [
    '../_base_/models/vit-base-p16_in21k-pre.py',
    '../_base_/datasets/flowers17.py',
    '../_base_/schedules/vit_finetune_sgd_cosine.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=17, topk=(1, 5)))
# Google's ViT weights expect pixels in [-1, 1]
data_preprocessor = dict(mean=[127.5] * 3, std=[127.5] * 3)
train_dataloader = dict(
    batch_size=64, sampler=dict(type='InfiniteSampler', shuffle=True))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1. / 400,
        by_epoch=False,
        begin=0,
        end=50 * 8),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.,
        by_epoch=False,
        begin=50 * 8,
        end=500 * 8),
]
train_cfg = dict(max_iters=500 * 8, val_interval=50 * 8)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=50 * 8,
        max_keep_ckpts=2,
        save_best='accuracy/top1'))
