# ViLBERT pretraining on Conceptual Captions with BUTD detector regions (36
# per image, 2048-d, with class distributions) as the visual stream, as in
# vilbert-multi-task (bert_base_6layer_6conect.json): a 6-layer 1024-d
# region stream, post-LN co-attention after vision layers 0..5 and text
# layers 6..11, 8 heads, bi-hidden 1024; MLM + ITM + masked-region KL.
# Region files: data/conceptual_captions/regions/<image id>.npz with
# cls_prob, from tools/feature_extraction/extract_regions.py (see
# configs/butd/README.md). Released BUTD TSVs have no cls_prob: with
# LoadRegionFeatures(feature_file='data/.../*.tsv') set
# model.losses.mrm=0 and require_cls_prob=False (MLM + ITM only).
_base_ = [
    './vilbert_vit-base-p16-bert-base_1xb20-pretrain_cc.py',
    '../_base_/models/vilbert_regions-stream.py',
]

model = dict(
    visual={{_base_.regions_visual}},
    coattention={{_base_.regions_coattention}},
    losses=dict(_delete_=True, mlm=1.0, itm=1.0, mrm=1.0),
    num_region_classes=1601)

# the data set base's regions pipeline, for training and validation
train_pipeline = {{_base_.regions_pipeline}}
test_pipeline = train_pipeline
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
