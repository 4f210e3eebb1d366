# Conceptual Captions (data/conceptual_captions, layout in data/README.md)
# for ViLBERT pre-training (MLM + ITM + MIM / MRM): the official train and
# validation TSVs; ITM accuracy and MLM accuracy. Image mode (the thesis
# recipe) makes a weak and a strong view of one 224 px crop and masks 10% of
# the strong view's 16 px patches (the ViT-B/16 grid: a config with another
# image or patch size redefines the pipelines); BERT-base tokenizer, 15% of
# the tokens masked. Regions mode (`regions_pipeline`, for the regions
# configs) reads 36 BUTD regions with cls_prob per image from
# data/conceptual_captions/regions/<image id>.npz.
dataset_type = 'ConceptualCaptions'
data_root = 'data/conceptual_captions'

# one geometry for both views (patch i must be the same place in both for
# the patch-wise InfoNCE); the strong view only differs photometrically.
# No hue jitter: mmcv 2.2's adjust_hue overflows uint8 under numpy 2.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.7, 1.0),
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='WeakStrongViews',
        weak=[
            dict(
                type='ColorJitter',
                brightness=0.1,
                contrast=0.1,
                saturation=0.1)
        ],
        strong=[
            dict(
                type='ColorJitter',
                brightness=0.3,
                contrast=0.3,
                saturation=0.3),
            dict(type='RandomGrayscale', prob=0.1, keep_channels=True),
            dict(type='GaussianBlur', radius=1.0, prob=0.5),
        ]),
    dict(type='RandomPatchMask', patch_size=16, ratio=0.1),
    dict(
        type='TokenizeCaption',
        bert='bert-base-uncased',
        max_length=36,
        mlm_prob=0.15),
    dict(type='PackViLBERTInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224), backend='pillow'),
    dict(
        type='TokenizeCaption',
        bert='bert-base-uncased',
        max_length=36,
        mlm_prob=0.15),
    dict(type='PackViLBERTInputs'),
]
# one pipeline for training and validation
region_dir = 'data/conceptual_captions/regions'
regions_pipeline = [
    dict(
        type='LoadRegionFeatures',
        feature_dir=region_dir,
        max_regions=36,
        require_cls_prob=True),  # the mrm loss's KL target
    dict(type='MaskRegions', prob=0.15, zero_prob=0.9),
    dict(type='TokenizeCaption', bert='bert-base-uncased', max_length=36),
    dict(type='PackViLBERTInputs'),
]

train_dataloader = dict(
    batch_size=20,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='mmext.vilbert_collate', itm_prob=0.5),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=20,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='mmext.vilbert_collate', itm_prob=0.5),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='ViLBERTPretrainMetric')
test_evaluator = val_evaluator
