# A tiny ViLBERT (2-layer 32-d BERT and ViT, one co-attention block) that
# pretrains in seconds on generated data, for smoke, DDP and tool tests:
#   python -c "from mmext.testing.vilbert import make_vilbert_tiny_data; \
#              make_vilbert_tiny_data('data/tiny_cc')"
#   python tools/train.py configs/vilbert/vilbert_tiny_1xb4-pretrain_tiny-cc.py
_base_ = ['./vilbert_vit-base-p16-bert-base_1xb20-pretrain_cc.py']

bert = 'data/tiny_cc/bert'  # a generated Hugging Face folder
data_root = 'data/tiny_cc'
img_size = 32
patch_size = 8

model = dict(
    text=dict(folder=bert),
    visual=dict(
        embed_dims=32,
        backbone=dict(
            arch=dict(
                _delete_=True,
                embed_dims=32,
                num_layers=2,
                num_heads=2,
                feedforward_channels=64),
            img_size=img_size,
            patch_size=patch_size,
            init_cfg=None)),
    coattention=dict(
        preset=None, text_ids=[1], vision_ids=[1], bi_dims=32, num_heads=2),
    pooled_dims=32,
    mim=dict(tokens='all'))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.7, 1.0),
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='WeakStrongViews',
        weak=[],
        strong=[dict(type='ColorJitter', brightness=0.3, contrast=0.3)]),
    dict(type='RandomPatchMask', patch_size=patch_size, ratio=0.25),
    dict(type='TokenizeCaption', bert=bert, max_length=16),
    dict(type='PackViLBERTInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), backend='pillow'),
    dict(type='TokenizeCaption', bert=bert, max_length=16),
    dict(type='PackViLBERTInputs'),
]
_data = dict(data_root=data_root, ann_file='captions.tsv')
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=train_pipeline, **_data))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=test_pipeline, **_data))
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(lr=1e-3), accumulative_counts=1)
max_epochs = 6  # 16 samples / 4 = 4 iterations per epoch
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=2e-4,
        by_epoch=True,
        begin=1,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=3)
auto_scale_lr = dict(base_batch_size=4)
default_hooks = dict(logger=dict(interval=1))
randomness = dict(seed=0)
