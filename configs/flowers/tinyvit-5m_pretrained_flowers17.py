# TinyViT-5M (ImageNet-21k distilled, 1k fine-tuned) fine-tuned on
# Flowers-17 split 1.
_base_ = [
    '../_base_/models/flowers_tinyvit-5m.py',
    '../_base_/datasets/flowers17.py',
    '../_base_/schedules/flowers_sgd_warmup-cosine-tail.py',
]
