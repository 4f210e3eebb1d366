# MM-IMDb (data/mmimdb, layout in data/README.md) for ViLBERTClassifier:
# 23 genres, multi-label, on the official 15552 / 2608 / 7799 split (the
# thesis code used its own 80/20 split of trainval instead); F1 micro /
# macro / weighted / samples and macro AUROC. Image mode reads the poster
# (224 px, BERT-base tokenizer, as _base_/models/vilbert-cls_vit-base-p16-
# bert-base.py's img_size / bert) and the plot; regions mode
# (`regions_pipeline`, for the regions configs) reads BUTD regions from
# data/mmimdb/regions/<id>.npz.
_base_ = ['./vilbert-cls_pipelines-224px.py']

dataset_type = 'MMIMDb'
data_root = 'data/mmimdb'

# up to 100 regions + the mean "global" one, as vilbert-multi-task's
# downstream tasks; one pipeline for training and testing
region_dir = 'data/mmimdb/regions'
regions_pipeline = [
    dict(type='LoadRegionFeatures', feature_dir=region_dir, max_regions=100),
    dict(
        type='TokenizeCaption',
        bert='bert-base-uncased',
        max_length=197,
        mlm_prob=0),
    dict(type='PackViLBERTInputs'),
]

_loader = dict(
    batch_size=20,
    num_workers=4,
    collate_fn=dict(type='mmext.vilbert_collate', itm_prob=0))
train_dataloader = dict(
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline={{_base_.train_pipeline}}),
    **_loader)
val_dataloader = dict(
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='dev',
        pipeline={{_base_.test_pipeline}}),
    **_loader)
test_dataloader = dict(
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline={{_base_.test_pipeline}}),
    **_loader)
val_evaluator = dict(type='MultiLabelClassificationMetric')
test_evaluator = val_evaluator
