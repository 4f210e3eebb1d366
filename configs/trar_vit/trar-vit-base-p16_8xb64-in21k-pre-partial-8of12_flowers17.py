# TRAR-ViT-B/16 on Flowers-17 with patch_embed, cls_token, pos_embed and the
# first 8 of 12 blocks (their routers included) frozen by PartialFreeze; the
# optimizer holds only the trainable parameters.
_base_ = ['./trar-vit-base-p16_8xb64-in21k-pre_flowers17.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='PartialFreeze',
        frozen_stages=8,
        backbone={{_base_.model.backbone}}))
optim_wrapper = dict(constructor='TrainableOptimWrapperConstructor')
custom_hooks = [dict(type='TrainableParamsHook')]
