# TRAR-ViT-B/16 on Flowers-17 at 384 px: every block routes soft,
# average-pooled weights over the attention spans [0, 1, 2].
_base_ = ['./vit-base-p16_8xb64-in21k-pre_flowers17-384px.py']
model = dict(
    backbone=dict(type='TRARViT', orders=[0, 1, 2], proj_drop_rate=0.))
