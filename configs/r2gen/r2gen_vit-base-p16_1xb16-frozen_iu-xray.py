# ViT-B/16 (ImageNet-21k, pretrain_pth/ViT-B_16.pth) frozen as the visual
# extractor: 196 patch tokens of 768-d per view (CLS dropped), 392 per study;
# the head's att_embed maps 768 -> 512 (its input width follows the neck).
_base_ = ['./r2gen_resnet101_1xb16_iu-xray.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='VisionTransformer',
        arch='b',
        img_size=224,
        patch_size=16,
        out_type='raw',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='pretrain_pth/ViT-B_16.pth',
            prefix='backbone.')),
    neck=dict(in_channels=768, cls='drop'),
    freeze=dict(frozen_stages='all'))
