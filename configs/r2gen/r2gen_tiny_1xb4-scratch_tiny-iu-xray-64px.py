# Tiny R2Gen for smoke and DDP tests: a 16-channel ResNet-18 from scratch, a
# 1-layer 64-d head, 64 px views, beam 2 / 20 tokens. On the generated data
# (24 train studies) it reaches val BLEU-4 ~0.2 in 15 epochs (~40 s, 2 CPUs):
#   python -c "from mmext.testing.reports import make_iu_xray; \
#              make_iu_xray('data/tiny_iu_xray')"
#   python tools/train.py \
#       configs/r2gen/r2gen_tiny_1xb4-scratch_tiny-iu-xray-64px.py
_base_ = ['./r2gen_resnet101_1xb16_iu-xray.py']
data_root = 'data/tiny_iu_xray'
ann_file = data_root + '/annotation.json'
max_seq_length = 20

model = dict(
    backbone=dict(depth=18, stem_channels=16, base_channels=16, init_cfg=None),
    neck=dict(in_channels=128),
    head=dict(
        d_model=64,
        d_ff=64,
        num_layers=1,
        num_heads=4,
        rm_num_heads=4,
        rm_d_model=64,
        drop_prob_lm=0.1),
    tokenizer=dict(ann_file=ann_file),
    max_seq_length=max_seq_length,
    decode=dict(beam_size=2))

train_pipeline = [
    dict(type='LoadMultiViewImages'),
    dict(
        type='ApplyToViews',
        transforms=[
            dict(type='ResizeEdge', scale=72, edge='short', backend='pillow'),
            dict(type='RandomCrop', crop_size=64),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        ]),
    dict(type='PackReportInputs'),
]
test_pipeline = [
    dict(type='LoadMultiViewImages'),
    dict(
        type='ApplyToViews',
        transforms=[
            dict(type='Resize', scale=(64, 64), backend='pillow'),
        ]),
    dict(type='PackReportInputs'),
]
_data = dict(
    data_root=data_root,
    tokenizer=dict(ann_file=ann_file),
    max_seq_length=max_seq_length)
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
val_evaluator = dict(scorers=('bleu', 'rouge', 'cider'))  # no Java needed
test_evaluator = dict(scorers=('bleu', 'rouge', 'cider'))

optim_wrapper = dict(optimizer=dict(lr=3e-3))
param_scheduler = dict(step_size=100)  # constant lr over the short run
train_cfg = dict(max_epochs=15, val_interval=5)
default_hooks = dict(logger=dict(interval=1))
randomness = dict(seed=0)
