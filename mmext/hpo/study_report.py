# Copyright (c) mmext contributors. All rights reserved.
"""Study outputs: trial table, best config files, plots."""
import csv
import json
import os
import os.path as osp
import re
import warnings
from collections import Counter

from mmengine.config import Config
from optuna.trial import TrialState

from .console import short_names
from .objective import apply_overrides
from .space import get_key

__all__ = [
    'trial_table', 'write_trial_table', 'best_trials', 'write_best_config',
    'write_best_configs', 'write_plots', 'failure_summary', 'wrap_label',
    'parallel_coordinate_axis_labels', 'parallel_coordinate_figure'
]


def trial_table(study):
    """One dict per trial: number, state, value(s), params, fail reason,
    work dir."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append(
            dict(
                number=t.number,
                state=t.state.name,
                values=t.values,
                params=t.params,
                fail_reason=t.user_attrs.get('fail_reason'),
                work_dir=t.user_attrs.get('work_dir'),
                last_step=t.last_step))
    return rows


def failure_summary(rows, limit=3, width=160):
    """One line on the failed trials: their count and most common reasons
    (reasons that differ only in numbers, e.g. the trial number, count as
    one).

    Args:
        rows (list[dict]): :func:`trial_table` rows.
        limit (int): Reasons shown. Defaults to 3.
        width (int): Characters per reason. Defaults to 160.
    """
    reasons = [(r['fail_reason'] or 'no reason recorded (interrupted?)')
               for r in rows if r['state'] == 'FAIL']
    groups = Counter(re.sub(r'\d+', 'N', x.splitlines()[0]) for x in reasons)
    first = {}
    for x in reasons:
        first.setdefault(
            re.sub(r'\d+', 'N',
                   x.splitlines()[0]),
            x.splitlines()[0])
    parts = [
        f'{n}x {first[key][:width]}' for key, n in groups.most_common(limit)
    ]
    if len(groups) > limit:
        parts.append(f'{len(groups) - limit} other reasons')
    return f'{len(reasons)} failed: ' + '; '.join(parts)


def write_trial_table(study, out_dir):
    """``trials.json`` and ``trials.csv`` in ``out_dir``."""
    rows = trial_table(study)
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'trials.json'), 'w') as f:
        json.dump(rows, f, indent=1)
    with open(osp.join(out_dir, 'trials.csv'), 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['number', 'state', 'values', 'params', 'fail_reason'])
        for r in rows:
            w.writerow([
                r['number'], r['state'],
                json.dumps(r['values']),
                json.dumps(r['params']), r['fail_reason'] or ''
            ])
    return rows


def best_trials(study):
    """The best trial (single objective) or the Pareto front."""
    if not any(t.state == TrialState.COMPLETE
               for t in study.get_trials(deepcopy=False)):
        return []
    if len(study.directions) == 1:
        return [study.best_trial]
    return list(study.best_trials)


def _literal(value):
    if isinstance(value, dict):
        if all(isinstance(k, str) and k.isidentifier() for k in value):
            return 'dict(' + ', '.join(f'{k}={_literal(v)}'
                                       for k, v in value.items()) + ')'
        return '{' + ', '.join(f'{k!r}: {_literal(v)}'
                               for k, v in value.items()) + '}'
    if isinstance(value, list):
        return '[' + ', '.join(_literal(v) for v in value) + ']'
    if isinstance(value, tuple):
        return '(' + ''.join(f'{_literal(v)}, ' for v in value) + ')'
    return repr(value)


def _nest(overrides):
    tree = {}
    for key, value in overrides.items():
        node = tree
        *parents, leaf = key.split('.')
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def write_best_config(config, trial, out_path, cfg_options=None):
    """Write a runnable config reproducing ``trial``.

    It inherits ``config`` (``_base_``) and sets the trial's overrides; if
    an override indexes into a list (which ``_base_`` merging cannot), or
    ``cfg_options`` were used, the whole merged config is written instead.
    The file is loaded back and every override checked.

    Returns:
        str: ``out_path``.
    """
    overrides = dict(trial.user_attrs.get('overrides') or {})
    header = (f'# Optuna trial {trial.number}: values={trial.values}\n'
              f'# params={json.dumps(trial.params)}\n'
              f'# written by tools/hpo.py from {config}\n')
    os.makedirs(osp.dirname(osp.abspath(out_path)), exist_ok=True)
    inheritable = not cfg_options and not any(p.isdigit() for k in overrides
                                              for p in k.split('.'))
    if inheritable:
        base = osp.abspath(config)
        out_dir = osp.dirname(osp.abspath(out_path))
        if osp.commonpath([base, out_dir]) != osp.sep:
            base = osp.relpath(base, out_dir)  # movable with the project
        lines = [header, f'_base_ = [{base!r}]']
        for key, value in _nest(overrides).items():
            lines.append(f'{key} = {_literal(value)}')
        with open(out_path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
    else:
        cfg = Config.fromfile(config)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        cfg = apply_overrides(cfg, overrides)
        cfg.pop('work_dir', None)
        cfg.dump(out_path)
        with open(out_path) as f:
            body = f.read()
        with open(out_path, 'w') as f:
            f.write(header + body)
    loaded = Config.fromfile(out_path)
    for key, value in overrides.items():
        got = get_key(loaded, key)
        same = list(got) == list(value) if isinstance(
            value, (list, tuple)) else got == value
        if not same:
            raise RuntimeError(f'{out_path}: {key} reads back as {got!r}, '
                               f'not {value!r}')
    return out_path


def write_best_configs(config, study, out_dir, cfg_options=None):
    """``best_config.py`` (single objective) or ``pareto_trial_{n}.py``
    per Pareto-optimal trial; returns the written paths."""
    best = best_trials(study)
    if len(study.directions) == 1:
        return [
            write_best_config(config, t, osp.join(out_dir, 'best_config.py'),
                              cfg_options) for t in best
        ]
    return [
        write_best_config(config, t,
                          osp.join(out_dir, f'pareto_trial_{t.number}.py'),
                          cfg_options) for t in best
    ]


def write_plots(study, out_dir, metric_names):
    """Optimisation history, parameter importances, parallel coordinates
    and intermediate values: PNG (matplotlib) always, HTML when plotly is
    installed.

    Returns:
        tuple[list[str], list[str]]: Written files, and notes on what was
        skipped and why.
    """
    import matplotlib
    matplotlib.use('Agg')
    import optuna.visualization.matplotlib as vm
    os.makedirs(out_dir, exist_ok=True)
    files, notes = [], []
    try:
        import optuna.visualization as vp
        import plotly  # noqa: F401
    except ImportError:
        vp = None
        notes.append('HTML plots skipped: plotly is not installed '
                     '(pip install plotly); PNGs written with '
                     'optuna.visualization.matplotlib')
    complete = [
        t for t in study.get_trials(deepcopy=False)
        if t.state == TrialState.COMPLETE
    ]
    multi = len(study.directions) > 1
    plots = []
    for i, name in enumerate(metric_names):
        kw = dict(
            target=(lambda t, i=i: t.values[i]),
            target_name=name) if multi else dict(target_name=name)
        tag = f'_{i}' if multi else ''
        plots += [(f'history{tag}', 'plot_optimization_history', kw),
                  (f'importances{tag}', 'plot_param_importances', kw),
                  (f'parallel_coordinate{tag}', 'plot_parallel_coordinate', kw)
                  ]
    if not multi:
        plots.append(('intermediate_values', 'plot_intermediate_values', {}))
    else:
        plots.append(('pareto_front', 'plot_pareto_front',
                      dict(target_names=list(metric_names))))
    with warnings.catch_warnings():  # "experimental" notices of optuna
        warnings.simplefilter('ignore')
        for stem, fn, kw in plots:
            _plot(study, vm, vp, stem, fn, kw, complete, out_dir, files, notes)
    return files, notes


def wrap_label(text, width=14):
    """Break ``text`` after ``.``, ``_`` or ``/`` into lines of about
    ``width`` characters; a piece longer than that stays whole (a label is
    never cut)."""
    lines, line = [], ''
    for piece in re.split(r'(?<=[._/])', text):
        if line and len(line) + len(piece) > width:
            lines.append(line)
            line = piece
        else:
            line += piece
    return '\n'.join(lines + [line])


def parallel_coordinate_axis_labels(study, target_name, target=None):
    """Axis labels of Optuna's parallel-coordinate plot: the metric, then
    the parameters in Optuna's order (sorted names of the finite complete
    trials), each by its shortest unique dotted suffix, wrapped.

    Optuna's matplotlib plot cuts every name to 17 characters, so
    ``optim_wrapper.optimizer.lr`` and ``optim_wrapper.optimizer.momentum``
    both read ``optim_wrapper.opt...``.
    """
    import math
    values = [(t, target(t) if target else t.value) for t in study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, ))]
    names = sorted({
        p
        for t, v in values if v is not None and math.isfinite(v)
        for p in t.params
    })
    short = short_names(names)
    return [wrap_label(target_name)] + [wrap_label(short[n]) for n in names]


def parallel_coordinate_figure(study, vm, **kw):
    """Optuna's matplotlib parallel-coordinate plot with readable axes:
    labels from :func:`parallel_coordinate_axis_labels` (unique, never
    cut, horizontal) and at least 1.3 inches per axis, 11 inches in all
    (over 800 px at 100 dpi after the tight crop).

    Returns:
        matplotlib.figure.Figure: The figure.
    """
    ax = vm.plot_parallel_coordinate(study, **kw)
    fig = ax.figure
    labels = parallel_coordinate_axis_labels(study, kw.get('target_name'),
                                             kw.get('target'))
    if len(labels) == len(ax.get_xticks()):  # else: optuna changed; keep
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=0, ha='center', fontsize=9)
    fig.set_size_inches(max(11, 1.3 * len(labels) + 2), 5.5)
    return fig


def _plot(study, vm, vp, stem, fn, kw, complete, out_dir, files, notes):
    """One plot as PNG (and HTML with plotly); a plot the study cannot
    support yet (too few trials) becomes a note."""
    import matplotlib.pyplot as plt
    if 'importances' in stem and (len(complete) < 2 or not complete[0].params):
        notes.append(f'{stem}: needs 2+ complete trials with parameters')
        return
    try:
        if fn == 'plot_parallel_coordinate':
            fig = parallel_coordinate_figure(study, vm, **kw)
        else:
            getattr(vm, fn)(study, **kw)
            fig = plt.gcf()
            fig.set_size_inches(9, 5.5)
        path = osp.join(out_dir, f'{stem}.png')
        # tight: the saved area holds every label (nothing cut at the edge)
        fig.savefig(path, dpi=100, bbox_inches='tight')
        files.append(path)
    except Exception as e:  # a plot needs data some studies lack
        notes.append(f'{stem}.png skipped: {type(e).__name__}: {e}')
    finally:
        plt.close('all')
    if vp is not None:
        try:
            path = osp.join(out_dir, f'{stem}.html')
            getattr(vp, fn)(study, **kw).write_html(path)
            files.append(path)
        except Exception as e:
            notes.append(f'{stem}.html skipped: {e}')
