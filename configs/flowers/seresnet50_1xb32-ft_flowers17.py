# SE-ResNet-50 (ImageNet-1k) fully fine-tuned on Flowers-17 split 1.
_base_ = [
    '../_base_/models/flowers_seresnet50.py',
    '../_base_/datasets/flowers17.py',
    '../_base_/schedules/flowers_sgd_warmup-cosine-tail.py',
    '../_base_/default_runtime.py',
]
# log every 20 iterations; keep the last 2 and the best checkpoint
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=10, max_keep_ckpts=2, save_best='auto'))
