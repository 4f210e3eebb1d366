# ViLBERT hyper-parameters (the thesis' HPO space, cesipy/bsc-code
# hyperparameter_optimizer.py: lr, dropout, epochs) for the configs/vilbert
# configs listed in `configs` below: pre-training (ViLBERT, keys under
# `model.coattention`) and fine-tuning (ViLBERTClassifier, keys under
# `model.vilbert.coattention`); `overrides(trial, cfg)` picks the prefix from
# the config. Every key reaches the model: lr / weight decay through the
# optimizer, dropout through the co-attention blocks (CoAttentionLayer
# `drop` / `attn_drop`, which the configs leave at their 0.1 default, hence
# `new_keys`), epochs through train_cfg and the config's own scheduler
# boundaries scaled with it (pre-training: 10 % warm-up, cosine until 90 %;
# fine-tuning: 10 % warm-up, cosine to the end). The thesis' trials set
# `depth` / `cross_attention_layers` fields its model ignored.
#   python tools/hpo.py \
#       configs/vilbert/vilbert_vit-base-p16-bert-base_1xb20-pretrain_cc.py \
#       --space configs/hpo/vilbert_hparams_space.py --n-trials 25 \
#       --pruner hyperband
#   D=configs/vilbert
#   python tools/hpo.py \
#       $D/vilbert-cls_vit-base-p16-bert-base_1xb20-ft_hateful-memes.py \
#       --space configs/hpo/vilbert_hparams_space.py --n-trials 25
# The objective metric is the config's entry in `configs` (binary/auroc for
# Hateful Memes, ...) unless --metric is given.
from optuna.distributions import FloatDistribution

from mmext.hpo.coattention import vilbert_key

space = {
    'optim_wrapper.optimizer.lr':
    FloatDistribution(5e-6, 2e-4, log=True),
    'optim_wrapper.optimizer.weight_decay':
    FloatDistribution(1e-3, 1e-1, log=True),
}
new_keys = [
    f'{root}.coattention.{name}' for root in ('model', 'model.vilbert')
    for name in ('drop', 'attn_drop')
]


def overrides(trial, cfg):
    root = vilbert_key(cfg)
    epochs = trial.suggest_int('epochs', 3, 9)
    scale = epochs / cfg.train_cfg.max_epochs
    out = {
        f'{root}.coattention.drop':
        trial.suggest_float('coattention.drop', 0.0, 0.4),
        f'{root}.coattention.attn_drop':
        trial.suggest_float('coattention.attn_drop', 0.0, 0.4),
        'train_cfg.max_epochs':
        epochs,
    }
    for i, sched in enumerate(cfg.param_scheduler):
        for end in ('begin', 'end'):
            if end in sched:
                out[f'param_scheduler.{i}.{end}'] = sched[end] * scale
    return out


_D = 'configs/vilbert/'
# the configs this space is written for -> objective metric (None: `metric`)
configs = {
    f'{_D}vilbert_vit-base-p16-bert-base_1xb20-pretrain_cc.py': None,
    f'{_D}vilbert_regions-bert-base_1xb20-pretrain_cc.py': None,
    f'{_D}vilbert_tiny_1xb4-pretrain_tiny-cc.py': None,
    f'{_D}vilbert-cls_vit-base-p16-bert-base_1xb20-ft_hateful-memes.py':
    'binary/auroc',
    f'{_D}vilbert-cls_regions-bert-base_1xb20-ft_hateful-memes.py':
    'binary/auroc',
    f'{_D}vilbert-cls_tiny_1xb4-ft_tiny-hateful-memes.py': 'binary/auroc',
    f'{_D}vilbert-cls_vit-base-p16-bert-base_1xb20-ft_mmimdb.py':
    'multi-label/auroc',
    f'{_D}vilbert-cls_regions-bert-base_1xb20-ft_mmimdb.py':
    'multi-label/auroc',
    f'{_D}vilbert-cls_tiny_1xb4-ft_tiny-mmimdb.py': 'multi-label/auroc',
    f'{_D}vilbert-cls_vit-base-p16-bert-base_1xb20-ft_upmc-food101.py':
    'accuracy/top1',
    f'{_D}vilbert-cls_regions-bert-base_1xb20-ft_upmc-food101.py':
    'accuracy/top1',
    f'{_D}vilbert-cls_tiny_1xb4-ft_tiny-upmc-food101.py': 'accuracy/top1',
}
metric = 'pretrain/itm_accuracy'
direction = 'maximize'
