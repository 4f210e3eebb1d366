# ViT-B/16 linear probe on Flowers-17: the whole backbone frozen (and kept in
# eval mode, so dropout is off), only the classifier head trains; a linear
# head tolerates a 10x larger lr.
_base_ = ['./vit-base-p16_1xb32-ft_flowers17.py']

model = dict(backbone=dict(frozen_stages='all'))
optim_wrapper = dict(optimizer=dict(lr=0.3))
