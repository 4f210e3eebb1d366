# Demo, stage 2: ResNet-18 at 64 px on the generated Flowers-17 look-alike
# (data/demo/flowers17), test on its test split. `make demo`
# (tools/misc/flowers_demo.py) starts the backbone from stage 1
# (resnet18_1xb8-scratch_demo-flowers102-noleak-64px.py) with
#   --cfg-options model.backbone.init_cfg.type=Pretrained
#   model.backbone.init_cfg.prefix=backbone.
#   model.backbone.init_cfg.checkpoint=<stage-1 checkpoint>
# Run alone, it trains from scratch.
_base_ = [
    '../_base_/datasets/flowers17.py',
    '../_base_/default_runtime.py',
]

data_root = 'data/demo/flowers17'
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=17,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)),
)

# the demo images are 64 x 64
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=64, crop_ratio_range=(0.6, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=64, edge='short'),
    dict(type='CenterCrop', crop_size=64),
    dict(type='PackInputs'),
]
# 2 shared CPU cores: no worker processes
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4))
max_epochs = 8
param_scheduler = dict(
    type='CosineAnnealingLR', by_epoch=True, T_max=max_epochs)
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=4)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(
        type='CheckpointHook', interval=max_epochs, max_keep_ckpts=1))
