# The tiny ViLBERTClassifier on generated UPMC Food-101-layout data
# (101 classes, 3 present), validated on a SeededSplit of train, for tests:
#   python -c "from mmext.testing import make_upmc_food101; \
#     from mmext.testing.bert import make_bert_folder; \
#     make_upmc_food101('data/tiny_food101'); \
#     make_bert_folder('data/tiny_food101/bert')"
_base_ = ['./vilbert-cls_tiny_1xb4-ft_tiny-hateful-memes.py']

bert = 'data/tiny_food101/bert'
dataset_type = 'UPMCFood101'
data_root = 'data/tiny_food101'
model = dict(
    num_classes=101,
    task='multiclass',
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
_train = dict(type=dataset_type, data_root=data_root, split='train')
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='SeededSplit',
        part='train',
        ratio=0.75,
        seed=46,
        dataset=dict(pipeline=train_pipeline, **_train)))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='SeededSplit',
        part='val',
        ratio=0.75,
        seed=46,
        dataset=dict(pipeline=test_pipeline, **_train)))
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline=test_pipeline))
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='SingleLabelMetric', items=('f1-score', ), average='macro'),
]
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='accuracy/top1'))
custom_hooks = [
    dict(
        type='EarlyStoppingHook',
        monitor='accuracy/top1',
        rule='greater',
        patience=4),
]
