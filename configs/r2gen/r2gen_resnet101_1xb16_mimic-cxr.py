# R2Gen reference: ResNet-101 fine-tuned, first view, MIMIC-CXR (max length
# 100, threshold 10). Published: BLEU-1..4 .353/.218/.145/.103, METEOR .142,
# ROUGE-L .277; clinical efficacy P/R/F1 .333/.273/.276.
_base_ = [
    '../_base_/models/r2gen_resnet101.py', '../_base_/datasets/mimic_cxr.py',
    '../_base_/schedules/r2gen_mimic_cxr.py', '../_base_/default_runtime.py'
]
model = dict(
    tokenizer=_base_.tokenizer,
    data_preprocessor=_base_.data_preprocessor,
    max_seq_length=_base_.max_seq_length)
default_hooks = dict(
    logger=dict(interval=10),
    # R2Gen monitors val BLEU-4 and keeps the best model
    checkpoint=dict(
        max_keep_ckpts=1, save_best='report/BLEU_4', rule='greater'))
randomness = dict(seed=456789)  # R2Gen's train_mimic_cxr.sh
