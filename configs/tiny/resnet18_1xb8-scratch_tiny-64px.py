# ResNet-18 from scratch on the generated 3-class tiny image folder: the
# end-to-end config the tool tests (train, resume, test, DDP, mim) run.
_base_ = [
    '../_base_/models/resnet18_3cls.py',
    '../_base_/datasets/tiny_imagefolder.py',
    '../_base_/schedules/tiny_sgd.py',
    '../_base_/default_runtime.py',
]
default_hooks = dict(logger=dict(interval=1))
