# ViLBERT hyper-parameters (the thesis' HPO space, cesipy/bsc-code
# hyperparameter_optimizer.py: lr, dropout, epochs) for any configs/vilbert
# config. Every key reaches the model: lr / weight decay through the
# optimizer, dropout through the co-attention blocks (CoAttentionLayer
# `drop` / `attn_drop`, which the configs leave at their 0.1 default, hence
# `new_keys`), epochs through train_cfg and the scheduler boundaries (10 %
# warm-up, cosine until 90 %, as the configs define them). The thesis'
# trials set `depth` / `cross_attention_layers` fields its model ignored.
#   python tools/hpo.py \
#       configs/vilbert/vilbert_vit-base-p16-bert-base_1xb20-pretrain_cc.py \
#       --space configs/hpo/vilbert_hparams_space.py --n-trials 25 \
#       --pruner hyperband
# For a fine-tuning config pass its metric, e.g. --metric auroc/auroc.
from optuna.distributions import FloatDistribution

space = {
    'optim_wrapper.optimizer.lr': FloatDistribution(5e-6, 2e-4, log=True),
    'optim_wrapper.optimizer.weight_decay':
    FloatDistribution(1e-3, 1e-1, log=True),
    'model.coattention.drop': FloatDistribution(0.0, 0.4),
    'model.coattention.attn_drop': FloatDistribution(0.0, 0.4),
}
new_keys = ['model.coattention.drop', 'model.coattention.attn_drop']


def overrides(trial):
    epochs = trial.suggest_int('epochs', 3, 9)
    return {
        'train_cfg.max_epochs': epochs,
        'param_scheduler.0.end': 0.1 * epochs,
        'param_scheduler.1.begin': 0.1 * epochs,
        'param_scheduler.1.end': 0.9 * epochs,
    }


metric = 'pretrain/itm_accuracy'
direction = 'maximize'
