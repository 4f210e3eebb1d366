# ViT-B/16 (ImageNet-21k weights) fine-tuned on Flowers-17 at 384 px; the
# weights' position embedding resized bilinearly as the reference loader
# (vit_npz_to_mmext.py ViT-B_16.npz --img-size 384).
_base_ = ['./vit-b16_in21k-pre_flowers17-224.py']
model = dict(
    backbone=dict(
        img_size=384,
        init_cfg=dict(checkpoint='pretrain_pth/ViT-B_16_384.pth')))
_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=438, edge='short'),
    dict(type='CenterCrop', crop_size=384),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='RandomResizedCrop', scale=384),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PackInputs'),
    ]))
val_dataloader = dict(dataset=dict(pipeline=_test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=_test_pipeline))
