# CIFAR-100 (data/cifar100/cifar-100-python): the CIFAR-10 recipe, 100 classes
_base_ = ['./cifar10_vit-224.py']
dataset_type = 'CIFAR100'
data_root = 'data/cifar100'
data_preprocessor = dict(num_classes=100)
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader
