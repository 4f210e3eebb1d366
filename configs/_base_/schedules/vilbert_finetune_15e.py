# The thesis fine-tuning recipe: AdamW (wd 0.01), 15 epochs, 10% linear
# warmup then cosine; early stopping (patience 3) on the task's primary
# validation metric, best checkpoint kept (set in each task's config, as
# its metric names differ). lr 4e-5 (Hateful Memes: 3.2e-5); seeds 1568-1570.
max_epochs = 15
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-5, weight_decay=0.01),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=0.1 * max_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.0,
        by_epoch=True,
        begin=0.1 * max_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
