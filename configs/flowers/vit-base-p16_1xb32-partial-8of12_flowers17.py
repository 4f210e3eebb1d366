# ViT-B/16 on Flowers-17 with patch_embed, cls_token, pos_embed and the first
# 8 of 12 blocks frozen: blocks 9-12, the final norm and the head train (with
# layer-wise lr decay over the trainable blocks).
_base_ = ['./vit-base-p16_1xb32-ft_flowers17.py']

model = dict(backbone=dict(frozen_stages=8))
