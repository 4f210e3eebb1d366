# Copyright (c) mmext contributors. All rights reserved.
"""The validation metric keys a config produces, known before training.

mmengine learns an evaluator's keys only when ``Evaluator.evaluate`` returns
at the end of the first validation, so a misspelt ``--metric`` (or
``save_best`` / ``monitor``) used to fail every trial (or run) after it had
trained. Here the config's ``val_evaluator``
metrics are built (no Runner, no data) and asked for their keys:

- a metric with a ``metric_keys()`` method (mmext's metrics in
  :mod:`mmext.evaluation.metrics`) lists the names its ``compute_metrics``
  returns, before mmengine adds the ``prefix/``;
- mmpretrain's metrics (and ViLBERT's pre-training metric) are listed in
  :data:`KNOWN_KEYS` from their constructor arguments;
- any other metric contributes ``{prefix}/*`` (its keys cannot be known).

Hooks that add validation metrics (``AlignmentHook``) are counted too. A
key may hold ``*`` (matched with :func:`fnmatch.fnmatchcase`). Per-class
lists (``*_classwise``) are left out: a trial needs one number.
"""
import difflib
import fnmatch

from mmext.utils.config import ConfigError

__all__ = [
    'KNOWN_KEYS', 'metric_keys', 'validation_keys', 'check_metrics',
    'close_keys'
]


def _thr_suffixes(thrs):
    thrs = (thrs, ) if isinstance(thrs, float) or thrs is None else thrs
    if len(thrs) == 1:
        return ['']
    return ['_no-thr' if t is None else f'_thr-{t:.2f}' for t in thrs]


def _accuracy(m):
    return [f'top{k}{s}' for k in m.topk for s in _thr_suffixes(m.thrs)]


def _average_suffix(average, plain):
    return {None: None, plain: ''}.get(average, f'_{average}')


def _single_label(m):
    avg = _average_suffix(m.average, 'macro')
    if avg is None:
        return []
    return [f'{i}{s}{avg}' for s in _thr_suffixes(m.thrs) for i in m.items]


def _multi_label(m):
    avg = _average_suffix(m.average, 'macro')
    if avg is None:
        return []
    if m.thr:
        sfx = '' if m.thr == 0.5 else f'_thr-{m.thr:.2f}'
    else:
        sfx = f'_top{m.topk}'
    return [f'{i}{sfx}{avg}' for i in m.items]


def _average_precision(m):
    return [] if m.average is None else ['mAP']


def _vilbert_pretrain(m):
    return ['itm_accuracy', 'mlm_accuracy']


#: metric class name -> ``metric -> [key without prefix]``, for metrics
#: whose module is not ours to give a ``metric_keys`` method
KNOWN_KEYS = {
    'Accuracy': _accuracy,
    'SingleLabelMetric': _single_label,
    'MultiLabelMetric': _multi_label,
    'AveragePrecision': _average_precision,
    'ViLBERTPretrainMetric': _vilbert_pretrain,
}


def metric_keys(metric):
    """Full keys (``prefix/name``) one built metric returns."""
    if hasattr(metric, 'metric_keys'):
        names = list(metric.metric_keys())
    elif type(metric).__name__ in KNOWN_KEYS:
        names = KNOWN_KEYS[type(metric).__name__](metric)
    else:
        names = ['*']
    prefix = getattr(metric, 'prefix', None)
    return [f'{prefix}/{n}' if prefix else n for n in names]


def _metric_cfgs(cfg):
    evaluator = cfg.get('val_evaluator')
    if evaluator is None or cfg.get('val_dataloader') is None \
            or cfg.get('val_cfg') is None:
        raise ConfigError(
            'the config has no validation (val_dataloader / val_cfg / '
            'val_evaluator), so no trial can be scored; add them')
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator = evaluator['metrics']  # an Evaluator dict
    return list(evaluator) if isinstance(evaluator,
                                         (list, tuple)) else [evaluator]


def _hook_keys(cfg):
    from mmext.registry import HOOKS
    keys = []
    for hook in cfg.get('custom_hooks') or []:
        kind = hook.get('type') if isinstance(hook, dict) else None
        name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
        if name.rpartition('.')[2] == 'AlignmentHook':
            built = HOOKS.build(dict(hook))
            for m in built.metrics:
                keys.append(f'alignment/{m}/mean')
                if built.log_pairs:
                    keys.append(f'alignment/{m}/*')
    return keys


def validation_keys(cfg):
    """Every key a validation of ``cfg`` reports (patterns may hold ``*``).

    Raises:
        ConfigError: No validation, or a metric that cannot be built.
    """
    import copy

    from mmext.registry import METRICS
    from mmext.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    keys = []
    for mcfg in _metric_cfgs(cfg):
        try:
            metric = METRICS.build(copy.deepcopy(mcfg))
        except Exception as e:
            kind = mcfg.get('type') if isinstance(mcfg, dict) else mcfg
            raise ConfigError(
                f'val_evaluator metric {kind!r} cannot be built: '
                f'{type(e).__name__}: {e}'.splitlines()[0]) from e
        keys += metric_keys(metric)
    return keys + _hook_keys(cfg)


def check_metrics(cfg, metrics, where='the config', source='--metric'):
    """Raise unless every objective metric is a validation key of ``cfg``.

    Args:
        cfg (Config): The config the trials train (``cfg_options`` merged).
        metrics (list[str]): Objective metric keys.
        where (str): The config file, for the message.
        source (str): Where the metric came from (``--metric`` or the space
            file), for the message.

    Returns:
        list[str]: The validation keys (patterns), for a summary.

    Raises:
        ConfigError: One line with the unknown metric, the nearest keys
            ("did you mean") and every key the evaluator gives.
    """
    keys = validation_keys(cfg)
    for metric in metrics:
        if any(fnmatch.fnmatchcase(metric, k) for k in keys):
            continue
        raise ConfigError(f'{source} {metric!r} is not a validation metric '
                          f'of {where}: {close_keys(metric, keys)}')
    return keys


def close_keys(metric, keys):
    """``"did you mean 'a'? its val_evaluator gives a, b"`` for a metric
    that is not among ``keys``."""
    close = difflib.get_close_matches(metric, keys, n=3, cutoff=0.4)
    hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ''
    return f'{hint}its val_evaluator gives {", ".join(keys) or "nothing"}'
