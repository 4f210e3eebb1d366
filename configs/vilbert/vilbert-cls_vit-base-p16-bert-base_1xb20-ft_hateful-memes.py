# Hateful Memes fine-tuning, the thesis recipe (cesipy/bsc-code): BCE with
# pos_weight = negatives / positives of train (5481 / 3019), lr 3.2e-5,
# 15 epochs, early stopping on validation AUROC (patience 3), best kept.
# Validation = dev_seen + dev_unseen (their 400 shared memes read once).
# Data: data/hateful_memes (data/README.md); weights: configs/vilbert/
# README.md. Seeds: --cfg-options randomness.seed=1569 (1568..1570).
_base_ = [
    '../_base_/models/vilbert-cls_vit-base-p16-bert-base.py',
    '../_base_/schedules/vilbert_finetune_15e.py',
    '../_base_/default_runtime.py',
]

bert = 'bert-base-uncased'
data_root = 'data/hateful_memes'
img_size = 224
model = dict(num_classes=1, task='binary', pos_weight=5481 / 3019)
randomness = dict(seed=1568)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.8, 1.0),
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='TokenizeCaption', bert=bert, max_length=197, mlm_prob=0),
    dict(type='PackViLBERTInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), backend='pillow'),
    dict(type='TokenizeCaption', bert=bert, max_length=197, mlm_prob=0),
    dict(type='PackViLBERTInputs'),
]
_loader = dict(
    batch_size=20,
    num_workers=4,
    collate_fn=dict(type='mmext.vilbert_collate', itm_prob=0))
train_dataloader = dict(
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='HatefulMemes',
        data_root=data_root,
        split='train',
        pipeline=train_pipeline),
    **_loader)
val_dataloader = dict(
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='HatefulMemes',
        data_root=data_root,
        split=['dev_seen', 'dev_unseen'],
        on_duplicate='drop',
        pipeline=test_pipeline),
    **_loader)
test_dataloader = dict(
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='HatefulMemes',
        data_root=data_root,
        split=['test_seen', 'test_unseen'],
        on_duplicate='drop',
        pipeline=test_pipeline),
    **_loader)
val_evaluator = dict(type='BinaryClassificationMetric')
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=3.2e-5))
primary_metric = 'binary/auroc'
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(
        type='CheckpointHook',
        interval=1,
        max_keep_ckpts=1,
        save_best=primary_metric,
        rule='greater'))
custom_hooks = [
    dict(
        type='EarlyStoppingHook',
        monitor=primary_metric,
        rule='greater',
        patience=3),
]
