# Copyright (c) mmext contributors. All rights reserved.
"""Studies: storage, sampler and pruner from names, resumable runs.

Storage is what makes a study resumable and shareable: ``sqlite:///x.db``
(default), any SQLAlchemy URL Optuna's ``RDBStorage`` takes (PostgreSQL,
MySQL: many machines), or an Optuna journal file (``journal:PATH`` or a
path ending in ``.log`` / ``.journal``: many processes on one file system,
no database server). Several ``tools/hpo.py`` processes given the same
storage and study name share the study (Optuna's distributed mode).

A trial whose process was killed (SIGKILL, OOM killer, a lost machine)
stays RUNNING in the storage: Optuna never hears of its end. On resume,
:func:`fail_dead_trials` marks such trials FAIL with a ``fail_reason``:

- same host: every trial records ``host/pid/start time`` (``worker`` user
  attr); a RUNNING trial whose process no longer exists (or whose pid now
  belongs to another process) is dead at once;
- other hosts, RDB storages: Optuna's heartbeat (``heartbeat_interval``,
  default 60 s; grace ``2 x`` that): a trial without a heartbeat for the
  grace period is dead. Journal files have no heartbeat, so a trial of a
  dead process on another host stays RUNNING until that host resumes.

A dead trial of an RDB storage is re-queued once with the same parameters
(Optuna's ``RetryHeartbeatStaleTrialCallback``), as Optuna does for a
heartbeat-stale trial it finds while optimising.
"""
import copy
import os
import socket
import warnings

import optuna
from optuna.trial import TrialState

__all__ = [
    'make_storage', 'make_pruner', 'make_sampler', 'open_study',
    'finished_trials', 'run_study', 'fail_dead_trials'
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


def run_study(study, objective, n_trials=None, timeout=None, callbacks=()):
    """Run trials until the study holds ``n_trials`` finished ones (counted
    over every process sharing it and earlier runs) or ``timeout`` s.

    Failed trials count: a trial that raises is recorded as FAIL with its
    ``fail_reason`` user attribute and the study goes on. ``callbacks``
    (``(study, frozen_trial)``) run after each trial of this call.

    Returns:
        int: Trials finished by this call.
    """
    before = len(finished_trials(study))
    callbacks = list(callbacks)
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


def _process_alive(pid, start):
    from .objective import process_start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        pass
    if not os.path.isdir('/proc'):  # no start times: trust kill(pid, 0)
        return True
    now = process_start(pid)  # None: a zombie, or gone meanwhile
    return now is not None and start in ('None', now)


def _dead_on_this_host(trial, host):
    worker = trial.user_attrs.get('worker')
    if not isinstance(worker, str) or worker.count('/') != 2:
        return None
    whost, pid, start = worker.split('/')
    if whost != host or not pid.isdigit():
        return None
    if _process_alive(int(pid), start):
        return None
    return (f'process {pid} on {host} died (killed or crashed) during the '
            'trial; marked failed on resume')


def _stale_ids(study):
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
    storage = study._storage
    if not (isinstance(storage, BaseHeartbeat)
            and is_heartbeat_enabled(storage)):
        return set(), None
    grace = getattr(storage, 'grace_period', None) or \
        2 * storage.get_heartbeat_interval()
    return set(storage._get_stale_trial_ids(study._study_id)), grace


def fail_dead_trials(study):
    """Mark RUNNING trials whose process died FAIL, with their reason.

    See the module docstring for how a dead process is recognised.

    Returns:
        dict[int, str]: Trial number -> ``fail_reason`` of each trial
        marked.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    host = socket.gethostname()
    stale, grace = _stale_ids(study)
    storage = study._storage
    marked = {}
    for trial in study.get_trials(
            deepcopy=False, states=(TrialState.RUNNING, )):
        reason = _dead_on_this_host(trial, host)
        if reason is None and trial._trial_id in stale:
            reason = (f'process died (no heartbeat for over {grace} s); '
                      'marked failed on resume')
        if reason is None:
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, 'fail_reason', reason)
            if not storage.set_trial_state_values(
                    trial._trial_id, state=TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:  # another worker got there first
            continue
        marked[trial.number] = reason
        retry = getattr(storage, 'get_heartbeat_stale_trial_callback',
                        lambda: None)()
        if retry is not None:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                retry(study, copy.deepcopy(storage.get_trial(trial._trial_id)))
    return marked
