# MM-IMDb in the regions mode (see the Hateful Memes regions config);
# region files in data/mmimdb/regions/<id>.npz.
_base_ = [
    './vilbert-cls_vit-base-p16-bert-base_1xb20-ft_mmimdb.py',
    '../_base_/models/vilbert_regions-stream.py',
]

region_dir = 'data/mmimdb/regions'
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
