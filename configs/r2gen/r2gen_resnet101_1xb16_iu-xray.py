# R2Gen reference: ResNet-101 fine-tuned, both views (98 tokens), IU X-ray.
# Published: BLEU-1..4 .470/.304/.219/.165, METEOR .187, ROUGE-L .371.
_base_ = [
    '../_base_/models/r2gen_resnet101.py', '../_base_/datasets/iu_xray.py',
    '../_base_/schedules/r2gen_iu_xray.py', '../_base_/default_runtime.py'
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
randomness = dict(seed=9223)  # R2Gen's train_iu_xray.sh
