# Hateful Memes fine-tuning in the regions mode: BUTD detector regions (up
# to 100 + the mean "global" region, as vilbert-multi-task's downstream
# tasks) through a 6-layer 1024-d region stream, post-LN co-attention after
# vision layers 0..5 / text layers 6..11 (bert_base_6layer_6conect), the
# ViLBERT poolers and their product -> MLP. Region files:
# data/hateful_memes/regions/<image stem>.npz from
# tools/feature_extraction/extract_regions.py (configs/butd/README.md).
# Released vilbert-multi-task weights: tools/model_converters/
# vilbert_multitask_to_mmext.py, then model.vilbert.init_cfg (README).
_base_ = [
    './vilbert-cls_vit-base-p16-bert-base_1xb20-ft_hateful-memes.py',
    '../_base_/models/vilbert_regions-stream.py',
]

region_dir = 'data/hateful_memes/regions'
model = {{_base_.regions_classifier}}
regions_pipeline = [
    dict(type='LoadRegionFeatures', feature_dir=region_dir, max_regions=100),
    dict(
        type='TokenizeCaption',
        bert='bert-base-uncased',
        max_length=197,
        mlm_prob=0),
    dict(type='PackViLBERTInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=regions_pipeline))
val_dataloader = dict(dataset=dict(pipeline=regions_pipeline))
test_dataloader = dict(dataset=dict(pipeline=regions_pipeline))
