# UPMC Food-101 (101 classes, cross-entropy): trained on 80% of the official
# train split, early-stopped on the other 20% (seed 46, as the thesis code),
# tested on the official test split; lr 4e-5, 15 epochs, patience 3.
# Reported: top-1 accuracy and macro F1. Data: data/upmc_food101.
_base_ = [
    '../_base_/models/vilbert-cls_vit-base-p16-bert-base.py',
    '../_base_/datasets/upmc_food101.py',
    '../_base_/schedules/vilbert_finetune_15e.py',
    '../_base_/default_runtime.py',
]

model = dict(num_classes=101, task='multiclass', pos_weight=None)
randomness = dict(seed=1568)

optim_wrapper = dict(optimizer=dict(lr=4e-5))
primary_metric = 'accuracy/top1'
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
