# ViLBERTClassifier over the thesis model (cesipy/bsc-code): BERT-base text
# stream, ViT-B/16 patch stream, pre-LN co-attention (score scale fixed)
# after text layers 6..11 / vision layers 0..5, 8 heads, bi-hidden 1024;
# the CLS token of each stream, concatenated (1536) -> 512 -> classes.
# Tasks set num_classes / task (and pos_weight for Hateful Memes). To start
# from a CC pretraining run, set
#   model.vilbert.init_cfg = dict(type='Pretrained', checkpoint=<epoch_N.pth>)
bert = 'bert-base-uncased'  # pretrain_pth/bert-base-uncased/
img_size = 224
patch_size = 16
model = dict(
    type='ViLBERTClassifier',
    vilbert=dict(
        type='ViLBERT',
        text=dict(folder=bert),
        visual=dict(
            type='PatchVisualStream',
            embed_dims=768,
            backbone=dict(
                type='VisionTransformer',
                arch='b',
                img_size=img_size,
                patch_size=patch_size,
                final_norm=False,
                init_cfg=dict(
                    type='Pretrained',
                    checkpoint='pretrain_pth/'
                    'vit-base-p16_timm-in21k-ft-in1k.pth',
                    prefix='backbone.'))),
        coattention=dict(
            preset='thesis', bi_dims=1024, num_heads=8, norm='pre'),
        pooler='cls'),
    fusion='concat',
    hidden_dims=512,
    dropout=0.1,
    data_preprocessor=dict(
        type='ViLBERTDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        to_rgb=True))
