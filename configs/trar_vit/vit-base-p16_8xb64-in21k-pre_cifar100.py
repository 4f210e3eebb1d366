# ViT-B/16 (ImageNet-21k weights) fine-tuned at 224 px with the ViT-pytorch
# recipe: the baseline TRAR-ViT is compared with.
_base_ = [
    '../_base_/models/vit-base-p16_in21k-pre.py',
    '../_base_/datasets/cifar100_vit-224.py',
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
model = dict(head=dict(num_classes=100))
