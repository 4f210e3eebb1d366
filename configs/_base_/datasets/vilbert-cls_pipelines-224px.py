# The image-mode pipelines of the ViLBERT fine-tuning data sets (Hateful
# Memes, MM-IMDb, UPMC Food-101): one 224 px image and its text, BERT-base
# tokenizer, up to 197 tokens, no MLM masking (as
# _base_/models/vilbert-cls_vit-base-p16-bert-base.py's img_size / bert).
# Each data set's base inherits these and adds its regions pipeline (its
# own region_dir) and loaders.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.8, 1.0),
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='TokenizeCaption',
        bert='bert-base-uncased',
        max_length=197,
        mlm_prob=0),
    dict(type='PackViLBERTInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224), backend='pillow'),
    dict(
        type='TokenizeCaption',
        bert='bert-base-uncased',
        max_length=197,
        mlm_prob=0),
    dict(type='PackViLBERTInputs'),
]
