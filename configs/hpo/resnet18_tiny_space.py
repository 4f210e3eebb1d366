# Search space for configs/tiny/resnet18_1xb8-scratch_tiny-64px.py (the
# tools/hpo.py smoke test): learning rate, momentum and the number of epochs.
#   python tools/hpo.py configs/tiny/resnet18_1xb8-scratch_tiny-64px.py \
#       --space configs/hpo/resnet18_tiny_space.py --n-trials 6
from optuna.distributions import FloatDistribution, IntDistribution

space = {
    'optim_wrapper.optimizer.lr': FloatDistribution(1e-3, 0.2, log=True),
    'optim_wrapper.optimizer.momentum': FloatDistribution(0.5, 0.95),
    'train_cfg.max_epochs': IntDistribution(1, 3),
}
configs = ['configs/tiny/resnet18_1xb8-scratch_tiny-64px.py']
metric = 'accuracy/top1'
direction = 'maximize'
