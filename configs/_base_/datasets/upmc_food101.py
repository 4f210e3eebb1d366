# UPMC Food-101 (data/upmc_food101, layout in data/README.md) for
# ViLBERTClassifier: 101 classes, trained on 80% of the official train
# split, validated on the other 20% (SeededSplit, seed 46, as the thesis
# code), tested on the official test split; top-1 accuracy and macro F1.
# Image mode reads the photo (224 px, BERT-base tokenizer, as
# _base_/models/vilbert-cls_vit-base-p16-bert-base.py's img_size / bert)
# and the page text; regions mode (`regions_pipeline`, for the regions
# configs) reads BUTD regions from data/upmc_food101/regions/<image
# stem>.npz.
_base_ = ['./vilbert-cls_pipelines-224px.py']

dataset_type = 'UPMCFood101'
data_root = 'data/upmc_food101'

# up to 100 regions + the mean "global" one, as vilbert-multi-task's
# downstream tasks; one pipeline for training and testing
region_dir = 'data/upmc_food101/regions'
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
# the official train split, before SeededSplit's 80 / 20 cut
_train = dict(type=dataset_type, data_root=data_root, split='train')
train_dataloader = dict(
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='SeededSplit',
        part='train',
        ratio=0.8,
        seed=46,
        dataset=dict(pipeline={{_base_.train_pipeline}}, **_train)),
    **_loader)
val_dataloader = dict(
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='SeededSplit',
        part='val',
        ratio=0.8,
        seed=46,
        dataset=dict(pipeline={{_base_.test_pipeline}}, **_train)),
    **_loader)
test_dataloader = dict(
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline={{_base_.test_pipeline}}),
    **_loader)
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='SingleLabelMetric', items=('f1-score', ), average='macro'),
]
test_evaluator = val_evaluator
