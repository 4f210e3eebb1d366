# Copyright (c) mmext contributors. All rights reserved.
"""What ``tools/hpo.py`` prints: one line per trial, one on resume.

Optuna's own log lines (``Trial 3 finished with value ... and parameters
{...}``) repeat every full config key and say nothing about failures but a
traceback, and mmengine's Runner prints its environment, the whole config
and every iteration of every trial. Here the console gets one line per
trial (number, parameters by their shortest unique names, value / PRUNED /
FAIL with its reason, best so far) and the Runner's output stays in the
trial's log file (:class:`~mmext.hpo.objective.ConfigObjective`).
"""
import math
import os.path as osp

from optuna.trial import TrialState

__all__ = [
    'short_names', 'format_params', 'format_value', 'best_so_far',
    'trial_line', 'TrialPrinter', 'study_line'
]


def short_names(keys):
    """The shortest dotted suffix that tells each key apart.

    ``['optim_wrapper.optimizer.lr', 'model.head.lr']`` ->
    ``{...: 'optimizer.lr', ...: 'head.lr'}``; a key that is a suffix of
    another keeps its full text. No two keys get the same name.

    Args:
        keys (Iterable[str]): Dotted config keys / parameter names.

    Returns:
        dict[str, str]: Key -> short name.
    """
    keys = list(dict.fromkeys(keys))
    out = {}
    for key in keys:
        parts = key.split('.')
        for n in range(1, len(parts) + 1):
            name = '.'.join(parts[-n:])
            clash = any(
                other != key and (other == name or other.endswith('.' + name))
                for other in keys)
            if not clash:
                break
        out[key] = name if not clash else key
    return out


def _number(value):
    if isinstance(value, float):
        return f'{value:.4g}' if math.isfinite(value) else str(value)
    return repr(value) if isinstance(value, str) else str(value)


def format_params(params, limit=160):
    """``lr=0.0123, momentum=0.9`` (shortest unique names, 4 digits)."""
    names = short_names(params)
    text = ', '.join(f'{names[k]}={_number(v)}' for k, v in params.items())
    return text if len(text) <= limit else text[:limit - 3] + '...'


def format_value(metrics, values):
    """``accuracy/top1 66.67`` (``; `` between several metrics)."""
    return '; '.join(f'{m} {_number(v)}' for m, v in zip(metrics, values))


def best_so_far(study, metrics):
    """``best so far 66.67 (trial 0)``; the front's size for several
    metrics; ``no complete trial yet``."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, ))
    if not complete:
        return 'no complete trial yet'
    if len(study.directions) > 1:
        front = sorted(t.number for t in study.best_trials)
        return f'Pareto front: trials {front}'
    best = study.best_trial
    return (f'best so far {format_value(metrics, best.values)} '
            f'(trial {best.number})')


def _outcome(trial, metrics, width):
    if trial.state == TrialState.COMPLETE:
        return format_value(metrics, trial.values)
    if trial.state == TrialState.PRUNED:
        step = trial.last_step
        last = trial.intermediate_values.get(step) if step is not None \
            else None
        at = '' if step is None else f' at step {step}'
        return f'PRUNED{at}' + ('' if last is None else
                                f' ({metrics[0]} {_number(last)})')
    if trial.state == TrialState.FAIL:
        reason = (trial.user_attrs.get('fail_reason')
                  or 'no reason recorded').splitlines()[0]
        if len(reason) > width:
            reason = reason[:width - 3] + '...'
        where = trial.user_attrs.get('traceback')
        return f'FAIL {reason}' + (f' (see {where})' if where else '')
    return trial.state.name


def trial_line(trial, study, metrics, width=160):
    """One console line for a finished trial.

    Example:
        ``trial 2 (14 s): lr=0.0536, momentum=0.587 -> accuracy/top1 66.67
        | best so far 66.67 (trial 2)``
    """
    params = trial.params or trial.user_attrs.get('overrides') or {}
    took = ''
    if trial.datetime_start and trial.datetime_complete:
        secs = (trial.datetime_complete - trial.datetime_start).total_seconds()
        took = f' ({secs:.0f} s)'
    return (f'trial {trial.number}{took}: '
            f'{format_params(params) or "no parameters"} -> '
            f'{_outcome(trial, metrics, width)} | '
            f'{best_so_far(study, metrics)}')


class TrialPrinter:
    """``study.optimize`` callback writing :func:`trial_line` per trial.

    Args:
        metrics (list[str]): Objective metric names.
        echo (callable): Takes one line (e.g. ``print``).
    """

    def __init__(self, metrics, echo):
        self.metrics = list(metrics)
        self.echo = echo

    def __call__(self, study, trial):
        self.echo(trial_line(trial, study, self.metrics))


def study_line(study, storage, n_trials=None):
    """``resuming study 'x' (storage): N finished, M failed, K running``
    for a study with trials, ``new study 'x' (storage)`` otherwise; plus
    how many trials this run adds to reach ``n_trials``."""
    states = [t.state for t in study.get_trials(deepcopy=False)]
    count = {s: states.count(s) for s in TrialState}
    finished = count[TrialState.COMPLETE] + count[TrialState.PRUNED]
    done = finished + count[TrialState.FAIL]
    where = storage if '://' in storage or storage.startswith('journal:') \
        else osp.normpath(storage)
    if states:
        head = (f"resuming study '{study.study_name}' ({where}): {finished} "
                f'finished ({count[TrialState.COMPLETE]} complete, '
                f'{count[TrialState.PRUNED]} pruned), '
                f'{count[TrialState.FAIL]} failed, '
                f'{count[TrialState.RUNNING]} running')
    else:
        head = f"new study '{study.study_name}' ({where})"
    if n_trials is None:
        return head
    todo = max(n_trials - done, 0)
    return head + (f'; {todo} more trial(s) to reach --n-trials {n_trials}'
                   if todo else f'; --n-trials {n_trials} reached, '
                   'nothing to run')


def summary_lines(summary, work_dir):
    """The end of a run: the study's states, the best trial(s), where the
    best config and the reports are (the whole summary is in
    ``summary.json``)."""
    states = summary['states']
    counts = ', '.join(f'{states.get(s, 0)} {word}'
                       for s, word in (('COMPLETE', 'complete'),
                                       ('PRUNED', 'pruned'), ('FAIL',
                                                              'failed')))
    lines = [
        f"study '{summary['study_name']}': {counts} "
        f"({summary['ran']} run now)"
    ]
    metrics = summary['metrics']
    best = summary['best']
    for b in best[:5]:
        params = format_params(b['params']) or 'no parameters'
        lines.append(f"best trial {b['number']}: "
                     f"{format_value(metrics, b['values'])} ({params})")
    if len(best) > 5:
        lines.append(f'... {len(best) - 5} more Pareto-optimal trials')
    configs = summary['best_configs']
    where = (f'best config {configs[0]}; ' if len(configs) == 1 else
             f'{len(configs)} Pareto configs; ' if configs else '')
    lines.append(f'{where}trials.csv, summary.json, plots/ and '
                 f'trial_N/train.log in {work_dir}')
    lines += summary['notes'][:1] if summary['plots'] else summary['notes']
    return lines
