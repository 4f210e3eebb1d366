# TRAR-ViT-B/16: every block routes soft, average-pooled weights over the
# attention spans [0, 1, 2, 3] (reference at 224 px: 81.60% vs 81.62% ViT on
# ImageNet).
_base_ = ['./vit-base-p16_8xb64-in21k-pre_cifar100.py']
model = dict(
    backbone=dict(type='TRARViT', orders=[0, 1, 2, 3], proj_drop_rate=0.))
