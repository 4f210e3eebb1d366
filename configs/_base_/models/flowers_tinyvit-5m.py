# TinyViT-5M for Flowers-17 from mmpretrain's ImageNet-21k-distilled weights.
# Input size must equal img_size (224). PartialFreeze's frozen_stages=k
# freezes patch_embed + the first k stages (upstream's own frozen_stages
# leaves patch_embed trainable).
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='PartialFreeze',
        frozen_stages=-1,
        backbone=dict(
            type='TinyViT',
            arch='5m',
            img_size=(224, 224),
            window_size=[7, 7, 14, 7],
            out_indices=(3, ),
            drop_path_rate=0.0,
            gap_before_final_norm=True,
            init_cfg=dict(
                type='Pretrained',
                checkpoint='pretrain_pth/tinyvit-5m_in21k-distill-pre_'
                '3rdparty_in1k_20221021-d4b010a8.pth',
                prefix='backbone.'))),
    head=dict(
        type='LinearClsHead',
        num_classes=17,
        in_channels=320,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)),
)
