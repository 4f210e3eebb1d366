# A few epochs of SGD: enough to fit the tiny data set on CPU
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))
# begin/end fixed: a run stopped early (max_epochs=1) keeps the same schedule
param_scheduler = dict(
    type='CosineAnnealingLR', by_epoch=True, T_max=4, begin=0, end=4)
train_cfg = dict(by_epoch=True, max_epochs=4, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=8)
