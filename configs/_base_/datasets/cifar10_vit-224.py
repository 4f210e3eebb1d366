# CIFAR-10 (mmpretrain's loader, data/cifar10/cifar-10-batches-py) upsampled
# to 224 as in jeonsworld/ViT-pytorch: RandomResizedCrop(scale 0.05-1) for
# training, a plain resize for testing, pixels normalised to [-1, 1].
dataset_type = 'CIFAR10'
data_root = 'data/cifar10'
data_preprocessor = dict(
    num_classes=10, mean=[127.5] * 3, std=[127.5] * 3, to_rgb=False)

train_pipeline = [
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.05, 1.0),
        backend='pillow',
        interpolation='bilinear'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(
        type='Resize',
        scale=(224, 224),
        backend='pillow',
        interpolation='bilinear'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        download=False,
        pipeline=train_pipeline),
    sampler=dict(type='InfiniteSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        download=False,
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
