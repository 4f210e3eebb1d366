# The tiny ViLBERTClassifier on generated MM-IMDb-layout data (23 genres,
# multi-label), for tests:
#   python -c "from mmext.testing import make_mmimdb; \
#     from mmext.testing.bert import make_bert_folder; \
#     make_mmimdb('data/tiny_mmimdb'); \
#     make_bert_folder('data/tiny_mmimdb/bert')"
_base_ = ['./vilbert-cls_tiny_1xb4-ft_tiny-hateful-memes.py']

bert = 'data/tiny_mmimdb/bert'
dataset_type = 'MMIMDb'
data_root = 'data/tiny_mmimdb'
model = dict(
    num_classes=23,
    task='multilabel',
    pos_weight=None,
    vilbert=dict(text=dict(folder=bert)))
_tok = dict(type='TokenizeCaption', bert=bert, max_length=16, mlm_prob=0)
_load = dict(type='LoadImageFromFile')
_resize = dict(type='Resize', scale=(32, 32), backend='pillow')
train_pipeline = [
    _load, _resize,
    dict(type='RandomFlip', prob=0.5), _tok,
    dict(type='PackViLBERTInputs')
]
test_pipeline = [_load, _resize, _tok, dict(type='PackViLBERTInputs')]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        split='dev',
        pipeline=test_pipeline))
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline=test_pipeline))
val_evaluator = dict(_delete_=True, type='MultiLabelClassificationMetric')
test_evaluator = val_evaluator
# threshold-free, as in the full config (F1-macro stays 0 from epoch 2 on
# this tiny data while AUROC rises)
primary_metric = 'multi-label/auroc'
default_hooks = dict(checkpoint=dict(save_best=primary_metric))
custom_hooks = [
    dict(
        type='EarlyStoppingHook',
        monitor=primary_metric,
        rule='greater',
        patience=4),
]
