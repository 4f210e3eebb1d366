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

model = {{_base_.regions_classifier}}
# the data set base's regions pipeline, for training and testing
train_dataloader = dict(dataset=dict(pipeline={{_base_.regions_pipeline}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_.regions_pipeline}}))
test_dataloader = dict(dataset=dict(pipeline={{_base_.regions_pipeline}}))
