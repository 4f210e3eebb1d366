# ViT-B/16 (ImageNet-21k weights) fine-tuned on cifar10 at 384 px. The
# weights' 14x14 position embedding is resized to 24x24 bilinearly, as the
# reference loader does:
#   python tools/model_converters/vit_npz_to_mmext.py ViT-B_16.npz \
#       --img-size 384   (writes pretrain_pth/ViT-B_16_384.pth)
_base_ = ['./vit-b16_in21k-pre_cifar10-224.py']
model = dict(
    backbone=dict(
        img_size=384,
        init_cfg=dict(checkpoint='pretrain_pth/ViT-B_16_384.pth')))
train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(
            type='RandomResizedCrop',
            scale=384,
            crop_ratio_range=(0.05, 1.0),
            backend='pillow',
            interpolation='bilinear'),
        dict(type='PackInputs'),
    ]))
val_dataloader = dict(
    dataset=dict(pipeline=[
        dict(
            type='Resize',
            scale=(384, 384),
            backend='pillow',
            interpolation='bilinear'),
        dict(type='PackInputs'),
    ]))
test_dataloader = val_dataloader
