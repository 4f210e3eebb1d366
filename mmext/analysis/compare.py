# Copyright (c) mmext contributors. All rights reserved.
"""One table of many runs: what differs, how well, how costly.

mmpretrain compares runs one log at a time (``analyze_logs``); the
Flowers and ViLBERT studies copied numbers by hand. :func:`compare_runs`
turns :mod:`mmext.analysis.runs` records into tables, one per model type
(classification, R2Gen, ViLBERT... have different metrics):

- per run: the config keys whose values differ between the runs (nothing
  else), HPO parameters, best and final validation metric (with the epoch
  or iteration), test metrics, parameters (total / trainable), FLOPs,
  seconds per iteration, peak memory, wall time and status with the error;
- per group (``group_by`` keys; default: every differing key but the seed):
  run count and mean +- std of the best, final and test metric.

Every number is taken from the run's files; nothing is estimated.
"""
import json
import math
import re
import statistics
from dataclasses import dataclass, field

from .runs import NOT_METRICS, flat_config

__all__ = [
    'Table', 'compare_runs', 'run_metrics', 'metric_mode', 'differing_keys',
    'model_size', 'SEED_KEYS', 'IGNORED_KEYS'
]

#: keys that make repeats of one setting, not another setting
SEED_KEYS = ('randomness.seed', 'seed')
#: config keys that differ between any two runs and say nothing about them
IGNORED_KEYS = re.compile(r'^(work_dir|experiment_name|resume|launcher|'
                          r'env_cfg\..*|vis_backends\..*|visualizer\..*|'
                          r'custom_imports\..*|default_hooks\.logger\..*)$')
LOWER_IS_BETTER = ('loss', 'error', 'err', 'perplexity', 'ppl', 'wer', 'cer',
                   'mae', 'mse', 'rmse')
_TRAINABLE_LINE = re.compile(r'^total\s+([\d,]+) / ([\d,]+)')


@dataclass
class Table:
    """Runs of one model type: ``rows`` (one dict per run, keys in
    ``columns``) and ``groups`` (keys in ``group_columns``)."""
    task: str
    metric: str
    mode: str
    columns: list
    rows: list
    group_by: list
    group_columns: list
    groups: list
    runs: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def metric_mode(metric, mode='auto'):
    """``max`` or ``min``: losses and errors are lower-is-better."""
    if mode != 'auto':
        return mode
    words = re.split(r'[^a-z]+', metric.lower())
    return 'min' if any(w in LOWER_IS_BETTER for w in words) else 'max'


def _metric_names(run):
    names = []
    for row in run.val:
        names += [k for k in row if k not in NOT_METRICS and k not in names]
    return names


def run_metrics(run, metric, mode):
    """Best and final validation value of ``metric`` with their step (the
    epoch for epoch-based runs, else the iteration); Nones when the run
    never validated it."""
    vals = [(r['step'], r[metric]) for r in run.val
            if isinstance(r.get(metric), (int, float))]
    if not vals:
        return dict(best=None, best_step=None, final=None, final_step=None)
    pick = max if mode == 'max' else min
    best = pick(vals, key=lambda sv: sv[1])  # first step of the best value
    return dict(
        best=best[1],
        best_step=best[0],
        final=vals[-1][1],
        final_step=vals[-1][0])


def _hashable(value):
    return json.dumps(value, sort_keys=True, default=str)


def differing_keys(configs):
    """Dotted keys whose value is not the same in every config (a key some
    configs lack counts as differing)."""
    flats = [flat_config(c) for c in configs]
    keys = []
    for flat in flats:
        keys += [k for k in flat if k not in keys]
    if len(flats) < 2:
        return []
    out = []
    for k in keys:
        if IGNORED_KEYS.match(k):
            continue
        values = {_hashable(f.get(k, '<absent>')) for f in flats}
        if len(values) > 1:
            out.append(k)
    return out


_SIZE_CACHE = {}


def _sizes_from_log(run):
    """Trainable / total parameters of ``TrainableParamsHook``'s table."""
    from .runs import _head_tail
    for log in reversed(run.logs):
        head, tail = _head_tail(log, 1 << 20)
        for line in (head + '\n' + tail).splitlines():
            m = _TRAINABLE_LINE.match(line.strip())
            if m:
                trainable, total = (
                    int(g.replace(',', '')) for g in m.groups())
                return total, trainable
    return None


def model_size(run, flops=True):
    """``(total params, trainable params, FLOPs, note)`` of a run's model.

    Parameters come from the ``TrainableParamsHook`` table of the log when
    present, else from the config's model built without data or weights
    (:func:`mmext.analysis.complexity.build_for_analysis`; freezing applied
    by ``train()``); FLOPs from :func:`~mmext.analysis.model_complexity`.
    Runs with the same model config share one build.
    """
    model_cfg = run.config.get('model')
    if not model_cfg:
        return None, None, None, 'no model in the config'
    key = _hashable([model_cfg, run.config.get('test_pipeline'), flops])
    if key not in _SIZE_CACHE:
        _SIZE_CACHE[key] = _build_size(run.config, flops)
    total, trainable, n_flops, note = _SIZE_CACHE[key]
    logged = _sizes_from_log(run)
    if logged:
        total, trainable = logged
    return total, trainable, n_flops, note


def _build_size(config, flops):
    from mmengine.config import Config
    try:
        import mmext.models  # noqa: F401  registers mmext's models
        from .complexity import build_for_analysis, model_complexity
        model, cfg, _ = build_for_analysis(Config(config))
        model.train()  # backbones apply frozen_stages here
        total = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters()
                        if p.requires_grad)
        model.eval()
        n_flops = model_complexity(
            cfg, model=model).total_flops if flops else None
        return total, trainable, n_flops, None
    except Exception as exc:  # a model that no longer builds: no sizes
        why = (str(exc).strip().splitlines() or [''])[0][:200]
        return None, None, None, f'model not built: {type(exc).__name__}: ' \
            f'{why}'


def _seconds_per_iter(run):
    times = [r['time'] for r in run.train if isinstance(r.get('time'), float)]
    return statistics.median(times) if times else None


def _peak_memory(run):
    gpu = [r['memory'] for r in run.train if 'memory' in r]
    if gpu:
        return max(gpu), 'GPU'
    rss = [r['rss_mb'] for r in run.train if 'rss_mb' in r]
    if rss:
        return max(rss), 'CPU RSS'
    return None, 'n/a on CPU (add RunStatusHook)'


def _task_name(model_type):
    if 'R2Gen' in model_type:
        return f'report generation ({model_type})'
    if 'ViLBERT' in model_type:
        return f'ViLBERT ({model_type})'
    if 'Classifier' in model_type:
        return f'classification ({model_type})'
    return model_type


def _stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else None


def _run_row(run, diff, params, metric, mode, complexity):
    flat = flat_config(run.config)
    row = dict(run=run.name)
    for k in diff:
        v = flat.get(k)
        row[k] = list(v) if isinstance(v, tuple) else v
    for k in params:
        row[f'param:{k}'] = run.params.get(k)
    row.update({f'{k}': v for k, v in run_metrics(run, metric, mode).items()})
    row['step_unit'] = 'epoch' if run.by_epoch else 'iter'
    for k, v in run.test.items():
        row[f'test:{k}'] = v
    total = trainable = n_flops = None
    if complexity:
        total, trainable, n_flops, note = model_size(
            run, flops=complexity != 'params')
        if note:
            run.notes.append(note)
    peak, kind = _peak_memory(run)
    row.update(
        params_total=total,
        params_trainable=trainable,
        flops=n_flops,
        sec_per_iter=_seconds_per_iter(run),
        peak_memory_mb=peak,
        memory_source=kind,
        wall_time_s=run.wall_time,
        status=run.status,
        error=run.error,
        work_dir=run.work_dir,
        config=run.config_path,
        logs=list(run.logs))
    return row


def _table(task, runs, metric, mode, group_by, complexity):
    names = []
    for run in runs:
        names += [k for k in _metric_names(run) if k not in names]
    notes = []
    if metric not in names:
        if metric and names:
            notes.append(f'{metric} not validated by these runs; using '
                         f'{names[0]}')
        metric = names[0] if names else (metric or 'none')
    mode = metric_mode(metric, mode)
    diff = differing_keys([r.config for r in runs])
    params = []
    for run in runs:
        params += [k for k in run.params if k not in params]
    rows = [_run_row(r, diff, params, metric, mode, complexity) for r in runs]
    tests = []
    for row in rows:
        tests += [k for k in row if k.startswith('test:') and k not in tests]
    columns = (
        ['run'] + diff + [f'param:{k}' for k in params] +
        ['best', 'best_step', 'final', 'final_step', 'step_unit'] + tests + [
            'params_total', 'params_trainable', 'flops', 'sec_per_iter',
            'peak_memory_mb', 'memory_source', 'wall_time_s', 'status', 'error'
        ])
    for row in rows:
        for k in tests:
            row.setdefault(k, None)
    if group_by is None:
        group_by = [k for k in diff if k not in SEED_KEYS
                    ] + [f'param:{k}' for k in params]
    groups = _groups(rows, group_by, f'test:{metric}')
    group_columns = list(group_by) + [
        'runs', 'best_mean', 'best_std', 'final_mean', 'final_std',
        'test_mean', 'test_std', 'members'
    ]
    return Table(task, metric, mode, columns, rows, list(group_by),
                 group_columns, groups, runs, notes)


def _groups(rows, group_by, test_key):
    order, members = [], {}
    for row in rows:
        key = _hashable([row.get(k) for k in group_by])
        if key not in members:
            order.append(key)
            members[key] = []
        members[key].append(row)
    groups = []
    for key in order:
        rs = members[key]
        g = {k: rs[0].get(k) for k in group_by}
        g['runs'] = len(rs)
        for name, col in (('best', 'best'), ('final', 'final'), ('test',
                                                                 test_key)):
            g[f'{name}_mean'], g[f'{name}_std'] = _stats(
                [r.get(col) for r in rs])
        g['members'] = [r['run'] for r in rs]
        groups.append(g)
    return groups


def compare_runs(runs,
                 metric=None,
                 group_by=None,
                 mode='auto',
                 complexity=True):
    """Tables of ``runs``, one per model type, in order of first appearance.

    Args:
        runs (list[Run]): From :func:`mmext.analysis.discover_runs`.
        metric (str, optional): Validation metric of the best / final
            columns. Defaults to the first metric each table's runs log.
        group_by (list[str], optional): Config keys (or ``param:<name>``
            for HPO parameters) of the groups. Defaults to every differing
            key except :data:`SEED_KEYS`.
        mode (str): ``max``, ``min`` or ``auto`` (``min`` for losses and
            errors). Defaults to ``auto``.
        complexity (bool | str): Count parameters and FLOPs (``'params'``:
            parameters only). Defaults to True.

    Returns:
        list[Table]
    """
    by_task = {}
    for run in runs:
        by_task.setdefault(_task_name(run.model_type), []).append(run)
    return [
        _table(task, rs, metric, mode, group_by, complexity)
        for task, rs in by_task.items()
    ]


def fmt(value, digits=4):
    """A table cell: numbers rounded to ``digits`` significant digits,
    big counts with M / G suffixes left to the caller."""
    if value is None:
        return ''
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    if isinstance(value, int):
        return f'{value:,}'
    return f'{value:.{digits}g}'
