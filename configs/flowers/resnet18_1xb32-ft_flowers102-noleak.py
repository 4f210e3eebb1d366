# Two-stage transfer, stage 1: ResNet-18 (ImageNet-1k) fine-tuned on
# Flowers-102 without its near-duplicates of Flowers-17 images (the exclude
# file from tools/dedup/find_leakage.py, see data/README.md). Writes
# work_dirs/resnet18_1xb32-ft_flowers102-noleak/epoch_100.pth, which
# resnet18_1xb32-ft-from-flowers102_flowers17.py starts from.
_base_ = [
    '../_base_/models/flowers_resnet18.py',
    '../_base_/datasets/flowers102_noleak.py',
    '../_base_/schedules/flowers_sgd_warmup-cosine-tail.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=102))
# log every 20 iterations; keep the last 2 and the best checkpoint
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=10, max_keep_ckpts=2, save_best='auto'))
