# Search space for configs/flowers/resnet18_1xb32-ft_flowers17.py: learning
# rate, weight decay, frozen stages and schedule length. The schedule keeps its
# shape (5 warm-up epochs, cosine, last 10 % a linear tail), so `overrides`
# moves the scheduler boundaries with the epoch count. Tuned on Flowers-17's
# val split; the test split stays untouched.
#   python tools/hpo.py configs/flowers/resnet18_1xb32-ft_flowers17.py \
#       --space configs/hpo/resnet18_flowers17_space.py --n-trials 40 \
#       --pruner median --pruner-warmup 10
from optuna.distributions import CategoricalDistribution, FloatDistribution

space = {
    'optim_wrapper.optimizer.lr': FloatDistribution(1e-3, 1e-1, log=True),
    'optim_wrapper.optimizer.weight_decay':
    FloatDistribution(1e-5, 1e-3, log=True),
    # PartialFreeze: -1 trains everything, k freezes the stem + k stages
    'model.backbone.frozen_stages': CategoricalDistribution([-1, 0, 1, 2]),
}


def overrides(trial):
    epochs = trial.suggest_int('epochs', 30, 100, step=10)
    tail = epochs // 10
    return {
        'train_cfg.max_epochs': epochs,
        'param_scheduler.1.end': epochs - tail,
        'param_scheduler.2.begin': epochs - tail,
        'param_scheduler.2.end': epochs,
    }


# validate every 2 epochs so the pruner sees a curve
fixed = {'train_cfg.val_interval': 2}
configs = ['configs/flowers/resnet18_1xb32-ft_flowers17.py']
metric = 'accuracy/top1'
direction = 'maximize'
