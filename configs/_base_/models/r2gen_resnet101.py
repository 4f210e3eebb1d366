# R2Gen (Chen et al., EMNLP 2020): torchvision ResNet-101 (ImageNet) as visual
# extractor, 7x7x2048 patch tokens per view, memory-driven Transformer with
# R2Gen's defaults (d_model 512, d_ff 512, 3 layers, 8 heads, 3 memory slots).
# The tokenizer, data preprocessor and max length come from the data set base
# (configs/r2gen/*.py set them from `tokenizer` / `max_seq_length`).
model = dict(
    type='R2GenReportGenerator',
    backbone=dict(
        type='ResNet',
        depth=101,
        out_indices=(3, ),
        # torchvision's weights (R2Gen: pretrained=True); same keys as
        # mmpretrain's ResNet, fc.* is ignored
        init_cfg=dict(
            type='Pretrained',
            checkpoint='pretrain_pth/resnet101-63fe2227.pth')),
    neck=dict(type='VisualTokenNeck', in_channels=2048, cls='drop'),
    head=dict(
        type='R2GenHead',
        d_model=512,
        d_ff=512,
        num_layers=3,
        num_heads=8,
        dropout=0.1,
        drop_prob_lm=0.5,
        rm_num_slots=3,
        rm_num_heads=8,
        rm_d_model=512),
    # R2Gen: beam 3; its block_trigrams flag only acts on greedy search
    decode=dict(strategy='beam', beam_size=3),
)
