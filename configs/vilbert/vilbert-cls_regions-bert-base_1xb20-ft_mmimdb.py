# MM-IMDb in the regions mode (see the Hateful Memes regions config);
# region files in data/mmimdb/regions/<id>.npz.
_base_ = ['./vilbert-cls_vit-base-p16-bert-base_1xb20-ft_mmimdb.py']

region_dir = 'data/mmimdb/regions'
model = dict(
    vilbert=dict(
        visual=dict(
            _delete_=True, type='RegionVisualStream', feature_dims=2048,
            embed_dims=1024, num_layers=6, num_heads=8, ffn_dims=1024),
        coattention=dict(preset=None, text_ids=[6, 7, 8, 9, 10, 11],
                         vision_ids=[0, 1, 2, 3, 4, 5], norm='post',
                         # v_intermediate_size of bert_base_6layer_6conect.json
                         vision_ffn_dims=1024),
        pooler='vilbert', pooled_dims=1024),
    fusion='product', hidden_dims=2048)
regions_pipeline = [
    dict(type='LoadRegionFeatures', feature_dir=region_dir, max_regions=100),
    dict(type='TokenizeCaption', bert='bert-base-uncased', max_length=197,
         mlm_prob=0),
    dict(type='PackViLBERTInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=regions_pipeline))
val_dataloader = dict(dataset=dict(pipeline=regions_pipeline))
test_dataloader = dict(dataset=dict(pipeline=regions_pipeline))
