# Hateful Memes (data/hateful_memes, layout in data/README.md) for
# ViLBERTClassifier: train, validation on dev_seen + dev_unseen (their 400
# shared memes read once), test on test_seen + test_unseen; binary AUROC /
# accuracy. Image mode reads the meme (224 px, BERT-base tokenizer, as
# _base_/models/vilbert-cls_vit-base-p16-bert-base.py's img_size / bert);
# regions mode (`regions_pipeline`, for the regions configs) reads BUTD
# regions from data/hateful_memes/regions/<image stem>.npz.
_base_ = ['./vilbert-cls_pipelines-224px.py']

dataset_type = 'HatefulMemes'
data_root = 'data/hateful_memes'

# up to 100 regions + the mean "global" one, as vilbert-multi-task's
# downstream tasks; one pipeline for training and testing
region_dir = 'data/hateful_memes/regions'
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
        split=['dev_seen', 'dev_unseen'],
        on_duplicate='drop',
        pipeline={{_base_.test_pipeline}}),
    **_loader)
test_dataloader = dict(
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split=['test_seen', 'test_unseen'],
        on_duplicate='drop',
        pipeline={{_base_.test_pipeline}}),
    **_loader)
val_evaluator = dict(type='BinaryClassificationMetric')
test_evaluator = val_evaluator
