# SE-ResNet-50 (ImageNet-1k) fully fine-tuned on Flowers-17 split 1.
_base_ = [
    '../_base_/models/flowers_seresnet50.py',
    '../_base_/datasets/flowers17.py',
    '../_base_/schedules/flowers_sgd_warmup-cosine-tail.py',
]
