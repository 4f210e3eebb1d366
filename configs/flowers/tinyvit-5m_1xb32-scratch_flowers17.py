# TinyViT-5M trained from scratch on Flowers-17 (the same schedule as the
# pretrained run, so the two differ only in initialisation; mmpretrain's
# TinyViT init: truncated normal for conv / linear, LayerNorm 1 / 0).
_base_ = ['./tinyvit-5m_1xb32-ft_flowers17.py']

model = dict(
    backbone=dict(
        backbone=dict(init_cfg=[
            dict(
                type='TruncNormal',
                layer=['Conv2d', 'Linear'],
                std=.02,
                bias=0.),
            dict(type='Constant', layer=['LayerNorm'], val=1., bias=0.),
        ])))
