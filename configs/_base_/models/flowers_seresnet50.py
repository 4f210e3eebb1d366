# SE-ResNet-50 for Flowers-17 from mmpretrain's ImageNet-1k weights (SEResNet
# is a ResNet subclass: same stem / layer1..4 freezing rule).
_base_ = ['./flowers_resnet50.py']

model = dict(
    backbone=dict(
        backbone=dict(
            type='SEResNet',
            init_cfg=dict(
                checkpoint='pretrain_pth/'
                'se-resnet50_batch256_imagenet_20200804-ae206104.pth'))))
