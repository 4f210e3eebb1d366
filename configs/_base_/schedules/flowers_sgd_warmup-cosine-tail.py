# Flowers fine-tuning schedule (the best ViT recipe of the Flowers-17 study,
# used for every flowers model): 100 epochs of SGD at batch 32 (Flowers-17
# split 1: 680 training images = 22 iterations per epoch); learning rate warms
# up linearly for 5 epochs, follows a cosine to 10% until epoch 90, then a
# linear tail to 0. Schedulers step per iteration. Frozen parameters stay out
# of the optimizer (TrainableOptimWrapperConstructor) and the run logs its
# trainable / total parameters (TrainableParamsHook). Like every schedule it
# leaves `default_hooks` to the configs.

max_epochs = 100
warmup_epochs = 5
tail_epochs = 10

optim_wrapper = dict(
    constructor='TrainableOptimWrapperConstructor',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min_ratio=0.1,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs - tail_epochs,
        convert_to_iter_based=True),
    dict(
        type='LinearLR',
        start_factor=1.0,
        end_factor=0.0,
        by_epoch=True,
        begin=max_epochs - tail_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32)

custom_hooks = [dict(type='TrainableParamsHook')]
