# TinyViT-11M (ImageNet-21k distilled) fine-tuned on Flowers-17 split 1.
_base_ = ['./tinyvit-5m_1xb32-ft_flowers17.py']

model = dict(
    backbone=dict(
        backbone=dict(
            arch='11m',
            init_cfg=dict(
                checkpoint='pretrain_pth/tinyvit-11m_in21k-distill-pre_'
                '3rdparty_in1k_20221021-5d3bc0dc.pth'))),
    head=dict(in_channels=448))
