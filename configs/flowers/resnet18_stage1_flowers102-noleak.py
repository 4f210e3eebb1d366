# Two-stage transfer, stage 1: ResNet-18 (ImageNet-1k) fine-tuned on
# Flowers-102 without its near-duplicates of Flowers-17 images (the exclude
# file from tools/dedup/find_leakage.py, see data/README.md). Writes
# work_dirs/resnet18_stage1_flowers102-noleak/epoch_100.pth, which
# resnet18_stage2-from-102_flowers17.py starts from.
_base_ = [
    '../_base_/models/flowers_resnet18.py',
    '../_base_/datasets/flowers102_noleak.py',
    '../_base_/schedules/flowers_sgd_warmup-cosine-tail.py',
]

model = dict(head=dict(num_classes=102))
