# UPMC Food-101 (101 classes, cross-entropy): trained on 80% of the official
# train split, early-stopped on the other 20% (seed 46, as the thesis code),
# tested on the official test split; lr 4e-5, 15 epochs, patience 3.
# Reported: top-1 accuracy and macro F1. Data: data/upmc_food101.
_base_ = ['./vilbert-cls_vit-base-p16-bert-base_1xb20-ft_hateful-memes.py']

data_root = 'data/upmc_food101'
model = dict(num_classes=101, task='multiclass', pos_weight=None)
_train = dict(type='UPMCFood101', data_root=data_root, split='train')
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='SeededSplit',
        part='train',
        ratio=0.8,
        seed=46,
        dataset=dict(pipeline={{_base_.train_pipeline}}, **_train)))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='SeededSplit',
        part='val',
        ratio=0.8,
        seed=46,
        dataset=dict(pipeline={{_base_.test_pipeline}}, **_train)))
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='UPMCFood101',
        data_root=data_root,
        split='test',
        pipeline={{_base_.test_pipeline}}))
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='SingleLabelMetric', items=('f1-score', ), average='macro'),
]
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=4e-5))
primary_metric = 'accuracy/top1'
default_hooks = dict(checkpoint=dict(save_best=primary_metric))
custom_hooks = [
    dict(
        type='EarlyStoppingHook',
        monitor=primary_metric,
        rule='greater',
        patience=3),
]
