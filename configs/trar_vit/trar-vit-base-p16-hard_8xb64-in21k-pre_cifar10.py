# TRAR-ViT-B/16 with hard routing: Gumbel-softmax weights whose temperature
# TRARTemperatureHook anneals from 10 to 0.1 ('slow' policy; 8000 iterations =
# 1000 optimizer steps count as one epoch), one-hot routing at test time.
_base_ = ['./vit-base-p16_8xb64-in21k-pre_cifar10.py']
model = dict(
    backbone=dict(
        type='TRARViT',
        orders=[0, 1, 2, 3],
        routing='hard',
        binarize=True,
        proj_drop_rate=0.))
custom_hooks = [
    dict(type='TRARTemperatureHook', policy='slow', iters_per_epoch=8000)
]
