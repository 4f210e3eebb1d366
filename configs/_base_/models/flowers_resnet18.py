# ResNet-18 for Flowers-17, initialised from mmpretrain's ImageNet-1k weights
# (mmpretrain's released .pth loads unchanged; pretrain_pth/README.md).
# PartialFreeze builds the real ResNet and freezes its stem + first
# `frozen_stages` stages (-1: none); state-dict keys are ResNet's own.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='PartialFreeze',
        frozen_stages=-1,
        backbone=dict(
            type='ResNet',
            depth=18,
            num_stages=4,
            out_indices=(3, ),
            style='pytorch',
            init_cfg=dict(
                type='Pretrained',
                checkpoint='pretrain_pth/'
                'resnet18_8xb32_in1k_20210831-fbbb1da6.pth',
                prefix='backbone.'))),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=17,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)),
)
