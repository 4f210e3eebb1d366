# Demo, stage 1: ResNet-18 at 64 px on the generated Flowers-102 look-alike
# (data/demo/flowers102) without the images tools/dedup/find_leakage.py
# found to be near-duplicates of Flowers-17 test images
# (data/demo/leakage/exclude.txt). `make demo` runs it before
# resnet18_1xb8-scratch_demo-flowers17-64px.py.
_base_ = ['./resnet18_1xb8-scratch_demo-flowers17-64px.py']

data_root = 'data/demo/flowers102'
data_preprocessor = dict(num_classes=102)
model = dict(head=dict(num_classes=102))

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ExcludeImages',
        exclude_file='data/demo/leakage/exclude.txt',
        dataset=dict(
            type='Flowers102',
            data_root=data_root,
            split='train',
            pipeline={{_base_.train_pipeline}})))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='Flowers102',
        data_root=data_root,
        split='val',
        pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
max_epochs = 3
param_scheduler = dict(T_max=max_epochs)
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
