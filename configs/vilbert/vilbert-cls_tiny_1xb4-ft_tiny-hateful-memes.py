# A tiny ViLBERTClassifier (2-layer 32-d BERT and ViT, one co-attention
# block) fine-tuned on generated Hateful Memes-layout data, for tests and
# a smoke run in seconds:
#   python -c "from mmext.testing import make_hateful_memes; \
#     from mmext.testing.bert import make_bert_folder; \
#     make_hateful_memes('data/tiny_hm'); \
#     make_bert_folder('data/tiny_hm/bert', \
#                      extra_words=['hateful', 'friendly'])"
#   python tools/train.py \
#       configs/vilbert/vilbert-cls_tiny_1xb4-ft_tiny-hateful-memes.py
_base_ = ['./vilbert-cls_vit-base-p16-bert-base_1xb20-ft_hateful-memes.py']

bert = 'data/tiny_hm/bert'
data_root = 'data/tiny_hm'
img_size = 32
model = dict(
    vilbert=dict(
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
                patch_size=8,
                init_cfg=None)),
        coattention=dict(
            preset=None, text_ids=[1], vision_ids=[1], bi_dims=32,
            num_heads=2)),
    hidden_dims=32,
    pos_weight=1.0)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='TokenizeCaption', bert=bert, max_length=16, mlm_prob=0),
    dict(type='PackViLBERTInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), backend='pillow'),
    dict(type='TokenizeCaption', bert=bert, max_length=16, mlm_prob=0),
    dict(type='PackViLBERTInputs'),
]
_loader = dict(batch_size=4, num_workers=0, persistent_workers=False)
train_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=train_pipeline), **_loader)
val_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=test_pipeline), **_loader)
test_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=test_pipeline), **_loader)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
max_epochs = 8
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
        eta_min=1e-4,
        by_epoch=True,
        begin=1,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(logger=dict(interval=1))
custom_hooks = [
    dict(
        type='EarlyStoppingHook',
        monitor='binary/auroc',
        rule='greater',
        patience=4),
]
randomness = dict(seed=0)
