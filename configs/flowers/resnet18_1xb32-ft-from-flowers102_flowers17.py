# Two-stage transfer, stage 2: Flowers-17 starting from the stage-1 run
# (resnet18_1xb32-ft_flowers102-noleak.py; train it first). `load_from` loads
# the whole stage-1 model except its 102-class head: LoadFromFilterHook
# drops the `head.*` keys whose shape differs from this model's before
# loading, so the 17-class head keeps its fresh initialisation (without it
# mmengine would only warn about the size mismatch). `--resume` and
# tools/test.py load this run's own 17-class checkpoints whole.
# The path is relative; mmext resolves it against the current directory,
# then the project root.
_base_ = [
    '../_base_/models/flowers_resnet18.py',
    '../_base_/datasets/flowers17.py',
    '../_base_/schedules/flowers_sgd_warmup-cosine-tail.py',
    '../_base_/default_runtime.py',
]

# every weight comes from stage 1: no ImageNet file needed
model = dict(backbone=dict(backbone=dict(init_cfg=None)))
load_from = 'work_dirs/resnet18_1xb32-ft_flowers102-noleak/epoch_100.pth'
custom_hooks = [
    dict(type='TrainableParamsHook'),
    dict(type='LoadFromFilterHook', drop=['head.*']),
]
# log every 20 iterations; keep the last 2 and the best checkpoint
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=10, max_keep_ckpts=2, save_best='auto'))
