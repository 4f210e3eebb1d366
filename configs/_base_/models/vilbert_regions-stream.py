# The regions-mode ViLBERT of vilbert-multi-task (bert_base_6layer_6conect
# .json): BUTD region features (2048-d + 5-d locations) through a 6-layer
# 1024-d region stream, post-LN co-attention after vision layers 0..5 /
# text layers 6..11, 8 heads, bi-hidden 1024, vision FFN 1024
# (v_intermediate_size). Used by the regions configs as
#   model.vilbert.visual = {{_base_.regions_visual}} (and coattention).
regions_visual = dict(
    _delete_=True,
    type='RegionVisualStream',
    feature_dims=2048,
    embed_dims=1024,
    num_layers=6,
    num_heads=8,
    ffn_dims=1024)
regions_coattention = dict(
    preset=None,
    text_ids=[6, 7, 8, 9, 10, 11],
    vision_ids=[0, 1, 2, 3, 4, 5],
    norm='post',
    vision_ffn_dims=1024)
# ViLBERTClassifier over the regions stream, as vilbert-multi-task's task
# heads: the ViLBERT poolers (1024) and their product -> 2048 -> classes.
# Regions fine-tuning configs set `model = {{_base_.regions_classifier}}`.
regions_classifier = dict(
    vilbert=dict(
        visual=regions_visual,
        coattention=regions_coattention,
        pooler='vilbert',
        pooled_dims=1024),
    fusion='product',
    hidden_dims=2048)
