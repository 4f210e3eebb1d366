# The 384 px pipelines of the ViT-B/16 fine-tuning line (ViT-pytorch's
# recipe: RandomResizedCrop with scale 0.05-1 for training, a plain bilinear
# resize for testing), one pair per input kind. A 384 px config inherits its
# 224 px sibling and this file, then picks its pair:
#   train_dataloader = dict(
#       dataset=dict(pipeline={{_base_.array_train_pipeline_384}}))
_rrc_384 = dict(
    type='RandomResizedCrop',
    scale=384,
    crop_ratio_range=(0.05, 1.0),
    backend='pillow',
    interpolation='bilinear')
_resize_384 = dict(
    type='Resize',
    scale=(384, 384),
    backend='pillow',
    interpolation='bilinear')

# in-memory arrays (CIFAR-10/100)
array_train_pipeline_384 = [_rrc_384, dict(type='PackInputs')]
array_test_pipeline_384 = [_resize_384, dict(type='PackInputs')]
# image files (ImageNet)
file_train_pipeline_384 = [
    dict(type='LoadImageFromFile'), _rrc_384,
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs')
]
file_test_pipeline_384 = [
    dict(type='LoadImageFromFile'), _resize_384,
    dict(type='PackInputs')
]
# image files, Flowers-17's crop recipe (default RandomResizedCrop scale;
# resize the short edge to 384 / 0.875 and centre-crop)
flowers_train_pipeline_384 = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=384),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
flowers_test_pipeline_384 = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=438, edge='short'),
    dict(type='CenterCrop', crop_size=384),
    dict(type='PackInputs'),
]
