# TinyViT-21M trained from scratch on Flowers-17.
_base_ = ['./tinyvit-5m_1xb32-scratch_flowers17.py']

model = dict(
    backbone=dict(backbone=dict(arch='21m')), head=dict(in_channels=576))
