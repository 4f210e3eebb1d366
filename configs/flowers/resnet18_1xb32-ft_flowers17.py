# ResNet-18 (ImageNet-1k) fully fine-tuned on Flowers-17 split 1.
#   python tools/train.py configs/flowers/resnet18_1xb32-ft_flowers17.py
#   python tools/test.py configs/flowers/resnet18_1xb32-ft_flowers17.py \
#       work_dirs/resnet18_1xb32-ft_flowers17/epoch_100.pth --tta
_base_ = [
    '../_base_/models/flowers_resnet18.py',
    '../_base_/datasets/flowers17.py',
    '../_base_/schedules/flowers_sgd_warmup-cosine-tail.py',
    '../_base_/default_runtime.py',
]
# log every 20 iterations; keep the last 2 and the best checkpoint
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=10, max_keep_ckpts=2, save_best='auto'))
