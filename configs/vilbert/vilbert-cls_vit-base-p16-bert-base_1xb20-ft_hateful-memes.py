# Hateful Memes fine-tuning, the thesis recipe (cesipy/bsc-code): BCE with
# pos_weight = negatives / positives of train (5481 / 3019), lr 3.2e-5,
# 15 epochs, early stopping on validation AUROC (patience 3), best kept.
# Validation = dev_seen + dev_unseen (their 400 shared memes read once).
# Data: data/hateful_memes (data/README.md); weights: configs/vilbert/
# README.md. Seeds: --cfg-options randomness.seed=1569 (1568..1570).
_base_ = [
    '../_base_/models/vilbert-cls_vit-base-p16-bert-base.py',
    '../_base_/datasets/hateful_memes.py',
    '../_base_/schedules/vilbert_finetune_15e.py',
    '../_base_/default_runtime.py',
]

model = dict(num_classes=1, task='binary', pos_weight=5481 / 3019)
randomness = dict(seed=1568)

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
