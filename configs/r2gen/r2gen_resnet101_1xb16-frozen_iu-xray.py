# ResNet-101 frozen (weights and BN statistics): only att_embed and the
# encoder-decoder train; the frozen backbone is left out of the optimizer.
_base_ = ['./r2gen_resnet101_1xb16_iu-xray.py']
model = dict(freeze=dict(frozen_stages='all'))
