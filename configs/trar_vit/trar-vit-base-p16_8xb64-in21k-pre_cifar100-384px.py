# TRAR-ViT-B/16: every block routes soft, average-pooled weights over the
# attention spans [0, 1, 2] (reference at 384 px: 83.77% vs 83.62% ViT on
# ImageNet).
_base_ = ['./vit-base-p16_8xb64-in21k-pre_cifar100-384px.py']
model = dict(
    backbone=dict(type='TRARViT', orders=[0, 1, 2], proj_drop_rate=0.))
