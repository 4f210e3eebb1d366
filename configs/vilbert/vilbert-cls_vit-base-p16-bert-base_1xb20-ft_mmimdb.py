# MM-IMDb genre classification (23 genres, multi-label BCE) on the official
# 15552 / 2608 / 7799 split (the thesis code used its own 80/20 split of
# trainval instead); lr 4e-5, 15 epochs, early stopping and the best
# checkpoint on validation macro AUROC (patience 3): threshold-free, unlike
# F1 at p > 0.5, which is 0 for every rare genre while the sigmoid outputs
# are still below 0.5 and then keeps the first epoch's checkpoint.
# Reported: F1 micro / macro / weighted / samples and macro AUROC.
# Data: data/mmimdb (data/README.md).
_base_ = ['./vilbert-cls_vit-base-p16-bert-base_1xb20-ft_hateful-memes.py']

data_root = 'data/mmimdb'
model = dict(num_classes=23, task='multilabel', pos_weight=None)
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='MMIMDb',
        data_root=data_root,
        split='train',
        pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='MMIMDb',
        data_root=data_root,
        split='dev',
        pipeline={{_base_.test_pipeline}}))
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='MMIMDb',
        data_root=data_root,
        split='test',
        pipeline={{_base_.test_pipeline}}))
val_evaluator = dict(_delete_=True, type='MultiLabelClassificationMetric')
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=4e-5))
primary_metric = 'multi-label/auroc'
default_hooks = dict(checkpoint=dict(save_best=primary_metric))
custom_hooks = [
    dict(
        type='EarlyStoppingHook',
        monitor=primary_metric,
        rule='greater',
        patience=3),
]
