# ResNet-50 for Flowers-17 from mmpretrain's ImageNet-1k weights.
_base_ = ['./flowers_resnet18.py']

model = dict(
    backbone=dict(
        backbone=dict(
            depth=50,
            init_cfg=dict(checkpoint='pretrain_pth/'
                          'resnet50_8xb32_in1k_20210831-ea4938fc.pth'))),
    head=dict(in_channels=2048))
