# Copyright (c) mmext contributors. All rights reserved.
"""``tools/hpo.py``'s whole run: check the space, run or resume the study,
write the trial table, the best config(s) and the plots."""
import contextlib
import copy
import json
import os
import os.path as osp
from collections import Counter

from mmengine.config import Config

from mmext.apis import prepare_config
from .console import TrialPrinter, study_line
from .metric_keys import check_metrics
from .objective import ConfigObjective, probe_overrides
from .space import load_space
from .study import (fail_dead_trials, make_pruner, make_sampler, make_storage,
                    open_study, run_study)
from .study_report import (best_trials, write_best_configs, write_plots,
                           write_trial_table)

__all__ = ['resolve_objective', 'search']


def resolve_objective(space, metrics=None, directions=None, config=None):
    """Metric names and directions from the command line, else the space
    file (its ``configs`` entry for ``config``, else its ``metric``), else
    ``maximize``; one direction is shared by every metric."""
    metrics = metrics or (space.metric_for(config)
                          if config is not None else space.metric)
    if not metrics:
        raise ValueError(
            'no objective metric: pass --metric (a validation metric key '
            "such as accuracy/top1) or set `metric` in the space file")
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    directions = directions or space.direction or 'maximize'
    directions = [directions] if isinstance(directions,
                                            str) else list(directions)
    if len(directions) == 1:
        directions = directions * len(metrics)
    if len(directions) != len(metrics):
        raise ValueError(f'{len(metrics)} metrics but {len(directions)} '
                         'directions; give one direction or one per metric')
    bad = [d for d in directions if d not in ('maximize', 'minimize')]
    if bad:
        raise ValueError(f'direction {bad[0]!r} is not maximize/minimize')
    return metrics, directions


@contextlib.contextmanager
def _optuna_log(debug):
    """Optuna logs each failed trial (with its traceback) besides our
    trial line; keep that only with ``debug`` (the traceback is always in
    the trial's ``traceback.txt``)."""
    import optuna
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(
        optuna.logging.WARNING if debug else optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def search(config,
           space_file,
           work_dir,
           study_name=None,
           storage=None,
           n_trials=20,
           timeout=None,
           metrics=None,
           directions=None,
           pruner='median',
           pruner_kwargs=None,
           sampler='tpe',
           seed=None,
           reduce='last',
           cfg_options=None,
           report_only=False,
           debug=False,
           echo=None,
           console_log=False):
    """Run (or resume) an Optuna study over ``config``.

    Args:
        config (str): mmext config file.
        space_file (str): Search-space file (see :mod:`mmext.hpo.space`).
        work_dir (str): Trials in ``{work_dir}/trial_{n}``; reports here.
        study_name (str, optional): Defaults to ``{config}-{space}``
            stems.
        storage (str, optional): Defaults to
            ``sqlite:///{work_dir}/study.db``.
        n_trials (int, optional): Finished trials the study should hold.
        timeout (float, optional): Seconds for this process.
        metrics, directions: See :func:`resolve_objective`.
        pruner (str): ``median``, ``hyperband`` or ``none``.
        pruner_kwargs (dict, optional): For :func:`make_pruner`.
        sampler (str): ``tpe``, ``random`` or ``nsga2``.
        seed (int, optional): Sampler seed.
        reduce (str): ``last`` or ``best`` validation value.
        cfg_options (dict, optional): Config overrides for every trial.
        report_only (bool): Only write the reports of the stored study.
        debug (bool): Keep Optuna's tracebacks of failed trials on the
            console (they are always in ``trial_{n}/traceback.txt``).
        echo (callable, optional): Takes the progress lines: where the
            study stands when it is opened (:func:`study_line`) and one
            line per trial (:func:`trial_line`). Defaults to None (quiet).
        console_log (bool): Also print each trial's mmengine log on the
            console (always in ``trial_{n}/train.log``).

    Returns:
        dict: Summary (states, best trials, written files, notes).
    """
    space = load_space(space_file)
    source = '--metric' if metrics else f'`metric` of {space_file}'
    metrics, directions = resolve_objective(space, metrics, directions, config)
    base = Config.fromfile(config)
    if cfg_options:
        base.merge_from_dict(cfg_options)
    # refuse metrics validation never gives, keys the config lacks, unknown
    # types, missing data roots and weight files before anything is created
    # or trained
    check_metrics(base, metrics, config, source)
    probe_overrides(space, base)
    prepare_config(copy.deepcopy(base), mode='train')
    os.makedirs(work_dir, exist_ok=True)
    study_name = study_name or (f'{osp.splitext(osp.basename(config))[0]}-'
                                f'{osp.splitext(osp.basename(space_file))[0]}')
    storage = storage or f'sqlite:///{osp.abspath(work_dir)}/study.db'
    study = open_study(
        make_storage(storage), study_name, directions,
        make_sampler(sampler, seed),
        make_pruner(pruner, **(pruner_kwargs or {})))
    dead = fail_dead_trials(study)  # RUNNING trials of killed processes
    if echo is not None:
        for number, reason in dead.items():
            echo(f'trial {number}: FAIL {reason}')
        echo(study_line(study, storage, None if report_only else n_trials))
    ran = 0
    if not report_only:
        objective = ConfigObjective(
            config,
            space,
            work_dir,
            metrics,
            reduce,
            directions,
            cfg_options,
            prune=pruner != 'none',
            console_log=console_log)
        printer = [TrialPrinter(metrics, echo)] if echo is not None else []
        with _optuna_log(debug):
            ran = run_study(study, objective, n_trials, timeout, printer)
    rows = write_trial_table(study, work_dir)
    best = write_best_configs(config, study, work_dir, cfg_options)
    with _optuna_log(debug):  # "no complete trials": in the notes already
        plots, notes = write_plots(study, osp.join(work_dir, 'plots'), metrics)
    summary = dict(
        study_name=study_name,
        storage=storage,
        ran=ran,
        states=dict(Counter(r['state'] for r in rows)),
        metrics=metrics,
        directions=directions,
        best=[
            dict(number=t.number, values=t.values, params=t.params)
            for t in best_trials(study)
        ],
        marked_failed_on_resume=dead,
        failed=[
            dict(number=r['number'], reason=r['fail_reason']) for r in rows
            if r['state'] == 'FAIL'
        ],
        best_configs=best,
        plots=plots,
        notes=notes)
    with open(osp.join(work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1, default=str)
    return summary
