# ViLBERT pretraining on Conceptual Captions with a ViT-B/16 visual stream
# and a BERT-base text stream: the thesis recipe (cesipy/bsc-code).
# Co-attention (pre-LN block, score scale fixed) after text layers 6..11 and
# vision layers 0..5, 8 heads, bi-hidden 1024; MLM + ITM + contrastive MIM
# (unmasked patches + CLS, tau 0.1, 10% of patches masked); AdamW lr 1e-4,
# wd 0.01; 10% linear warmup, cosine to 0.2 lr at 90% of the run; batch 20 x
# 26 accumulated (512); 7 epochs. Run with --amp on a GPU.
#   needs pretrain_pth/bert-base-uncased/ (Hugging Face folder) and
#   pretrain_pth/vit-base-p16_timm-in21k-ft-in1k.pth (see configs/vilbert/
#   README.md); data in data/conceptual_captions (see data/README.md).
_base_ = [
    '../_base_/datasets/conceptual_captions.py',
    '../_base_/default_runtime.py',
]

# the data set base's pipelines tokenize with this BERT, crop 224 px and
# mask 16 px patches; a config that changes them redefines the pipelines
# (as the tiny config does)
bert = 'bert-base-uncased'  # pretrain_pth/bert-base-uncased/
img_size = 224
patch_size = 16

model = dict(
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
            final_norm=False,  # timm's final norm is never used there
            init_cfg=dict(
                type='Pretrained',
                checkpoint='pretrain_pth/vit-base-p16_timm-in21k-ft-in1k.pth',
                prefix='backbone.'))),
    coattention=dict(preset='thesis', bi_dims=1024, num_heads=8, norm='pre'),
    pooler='vilbert',
    pooled_dims=1024,
    fusion='mul',
    losses=dict(mlm=1.0, itm=1.0, mim=1.0),
    mim=dict(temperature=0.1, tokens='unmasked', include_cls=True),
    data_preprocessor=dict(
        type='ViLBERTDataPreprocessor',
        mean=[127.5, 127.5, 127.5],  # timm ViT-B/16 augreg: 0.5 / 0.5
        std=[127.5, 127.5, 127.5],
        to_rgb=True))

accumulative_counts = 26
optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.01),
    accumulative_counts=accumulative_counts)
max_epochs = 7
# per iteration (micro-batch); begin / end in epochs are converted
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=0.1 * max_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.2e-4,
        by_epoch=True,
        begin=0.1 * max_epochs,
        end=0.9 * max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=20 * accumulative_counts)
default_hooks = dict(logger=dict(interval=50))
