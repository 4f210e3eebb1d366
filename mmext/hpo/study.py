# Copyright (c) mmext contributors. All rights reserved.
"""Studies: storage, sampler and pruner from names, resumable runs.

Storage is what makes a study resumable and shareable: ``sqlite:///x.db``
(default), any SQLAlchemy URL Optuna's ``RDBStorage`` takes (PostgreSQL,
MySQL: many machines), or an Optuna journal file (``journal:PATH`` or a
path ending in ``.log`` / ``.journal``: many processes on one file system,
no database server). Several ``tools/hpo.py`` processes given the same
storage and study name share the study (Optuna's distributed mode).
"""
import warnings

import optuna
from optuna.trial import TrialState

__all__ = [
    'make_storage', 'make_pruner', 'make_sampler', 'open_study',
    'finished_trials', 'run_study'
]

PRUNERS = ('median', 'hyperband', 'none')
SAMPLERS = ('tpe', 'random', 'nsga2')
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def make_storage(url, heartbeat_interval=60):
    """Optuna storage from a URL or journal path.

    RDB storages get a heartbeat: a trial whose process died (killed job,
    crashed machine) is marked FAIL after ``2 * heartbeat_interval`` s and
    re-queued once with the same parameters when the study resumes.
    """
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend
    if url.startswith('journal:') or url.endswith(('.log', '.journal')):
        path = url[len('journal:'):] if url.startswith('journal:') else url
        return JournalStorage(JournalFileBackend(path))
    if '://' not in url:
        raise ValueError(
            f'--storage {url!r} is neither a database URL '
            '(sqlite:///study.db, postgresql://...) nor a journal file '
            '(journal:PATH or *.log)')
    import optuna.storages as S
    with warnings.catch_warnings():  # "experimental" / deprecation notices
        warnings.simplefilter('ignore')
        if hasattr(S, 'RetryHeartbeatStaleTrialCallback'):  # optuna >= 4.9
            retry = dict(
                heartbeat_stale_trial_callback=S.
                RetryHeartbeatStaleTrialCallback(max_retry=1))
        else:
            retry = dict(
                failed_trial_callback=S.RetryFailedTrialCallback(max_retry=1))
        return RDBStorage(url, heartbeat_interval=heartbeat_interval, **retry)


def make_pruner(name='median',
                warmup_steps=0,
                startup_trials=2,
                min_resource=1,
                max_resource='auto',
                reduction_factor=3):
    """``median`` (MedianPruner), ``hyperband`` (HyperbandPruner) or
    ``none``; steps are validation epochs (iterations for iter-based
    loops)."""
    if name == 'median':
        return optuna.pruners.MedianPruner(
            n_startup_trials=startup_trials, n_warmup_steps=warmup_steps)
    if name == 'hyperband':
        return optuna.pruners.HyperbandPruner(
            min_resource=min_resource,
            max_resource=max_resource,
            reduction_factor=reduction_factor)
    if name == 'none':
        return optuna.pruners.NopPruner()
    raise ValueError(f'pruner {name!r} not in {PRUNERS}')


def make_sampler(name='tpe', seed=None):
    if name == 'tpe':
        return optuna.samplers.TPESampler(seed=seed)
    if name == 'random':
        return optuna.samplers.RandomSampler(seed=seed)
    if name == 'nsga2':
        return optuna.samplers.NSGAIISampler(seed=seed)
    raise ValueError(f'sampler {name!r} not in {SAMPLERS}')


def open_study(storage, study_name, directions, sampler=None, pruner=None):
    """Create the study or load it (same name in the same storage).

    A loaded study must have the same directions.
    """
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        directions=directions,
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True)
    have = [d.name.lower() for d in study.directions]
    if have != [d.lower() for d in directions]:
        raise ValueError(
            f"study '{study_name}' in this storage optimises {have}, not "
            f'{list(directions)}; use another --study-name or the same '
            '--direction')
    return study


def finished_trials(study):
    return [t for t in study.get_trials(deepcopy=False) if t.state in FINISHED]


def run_study(study, objective, n_trials=None, timeout=None):
    """Run trials until the study holds ``n_trials`` finished ones (counted
    over every process sharing it and earlier runs) or ``timeout`` s.

    Failed trials count: a trial that raises is recorded as FAIL with its
    ``fail_reason`` user attribute and the study goes on.

    Returns:
        int: Trials finished by this call.
    """
    before = len(finished_trials(study))
    callbacks = []
    todo = None
    if n_trials is not None:
        todo = max(n_trials - before, 0)
        if todo == 0:
            return 0
        callbacks.append(optuna.study.MaxTrialsCallback(n_trials, FINISHED))
    study.optimize(
        objective,
        n_trials=todo,
        timeout=timeout,
        callbacks=callbacks,
        catch=(Exception, ),
        gc_after_trial=True)
    return len(finished_trials(study)) - before
