# ViT-B/16 classifier initialised from Google's ImageNet-21k ViT-B_16.npz
# (converted by tools/model_converters/vit_npz_to_mmext.py). Dropout 0.1 and a
# zero-initialised head as jeonsworld/ViT-pytorch (the TRAR-ViT code base).
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='b',
        img_size=224,
        patch_size=16,
        drop_rate=0.1,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='pretrain_pth/ViT-B_16.pth',
            prefix='backbone.')),
    neck=None,
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        init_cfg=dict(type='Constant', layer='Linear', val=0)),
)
