# ViT-B/16 (ImageNet-21k) fully fine-tuned on Flowers-17 split 1, with
# layer-wise lr decay 0.75.
_base_ = [
    '../_base_/models/flowers_vit-b16.py',
    '../_base_/datasets/flowers17.py',
    '../_base_/schedules/flowers_vit_sgd_layer-decay.py',
]
