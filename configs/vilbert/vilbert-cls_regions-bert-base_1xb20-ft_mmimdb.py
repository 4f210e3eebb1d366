# MM-IMDb in the regions mode (see the Hateful Memes regions config);
# region files in data/mmimdb/regions/<id>.npz.
_base_ = [
    './vilbert-cls_vit-base-p16-bert-base_1xb20-ft_mmimdb.py',
    '../_base_/models/vilbert_regions-stream.py',
]

model = {{_base_.regions_classifier}}
# the data set base's regions pipeline, for training and testing
train_dataloader = dict(dataset=dict(pipeline={{_base_.regions_pipeline}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_.regions_pipeline}}))
test_dataloader = dict(dataset=dict(pipeline={{_base_.regions_pipeline}}))
