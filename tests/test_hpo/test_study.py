# Copyright (c) mmext contributors. All rights reserved.
"""Storage, resuming, sharing a study between workers, pruning decisions,
failures as FAIL, best-config files."""
import math
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from mmengine.config import Config
from optuna.trial import TrialState

from mmext.engine.hooks import OptunaPruningHook
from mmext.hpo import (make_pruner, make_storage, open_study, run_study,
                       write_best_config)
from mmext.hpo.study_report import write_plots, write_trial_table
from tests.conftest import ROOT

TINY = ROOT / 'configs/tiny/resnet18_1xb8-scratch_tiny-64px.py'
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _quadratic(trial):
    x = trial.suggest_float('x', -2, 2)
    if x > 1.5:
        raise RuntimeError('planted failure')
    return (x - 0.5)**2


@pytest.mark.parametrize('kind', ['sqlite', 'journal'])
def test_two_workers_share_and_resume(tmp_path, kind):
    url = (f'sqlite:///{tmp_path}/s.db'
           if kind == 'sqlite' else f'journal:{tmp_path}/s.log')

    def worker(seed):
        return open_study(
            make_storage(url), 'shared', ['minimize'],
            optuna.samplers.RandomSampler(seed))

    a, b = worker(0), worker(1)
    assert run_study(a, _quadratic, n_trials=4) == 4
    # the second worker sees the first one's trials and tops up to 6
    assert run_study(b, _quadratic, n_trials=6) == 2
    assert run_study(worker(2), _quadratic, n_trials=6) == 0
    trials = worker(3).get_trials()
    assert len(trials) == 6
    for t in trials:  # a failure is FAIL without a value, never a score
        if t.params['x'] > 1.5:
            assert t.state == TrialState.FAIL and t.values is None
        else:
            assert t.state == TrialState.COMPLETE
    with pytest.raises(ValueError, match="optimises \\['minimize'\\]"):
        open_study(make_storage(url), 'shared', ['maximize'])


def test_storage_url_errors():
    with pytest.raises(ValueError, match='neither a database URL'):
        make_storage('study.db')
    with pytest.raises(ValueError, match='not in'):
        make_pruner('asha')


class _Runner(SimpleNamespace):
    train_loop = SimpleNamespace(max_epochs=5)


def _finished(study, values):
    trial = study.ask()
    for step, v in enumerate(values, 1):
        trial.report(v, step)
    study.tell(trial, values[-1])


def test_pruning_hook_prunes_a_lagging_trial():
    study = optuna.create_study(
        direction='maximize', pruner=make_pruner('median', startup_trials=1))
    _finished(study, [50, 60, 70])
    good = OptunaPruningHook(study.ask(), 'acc')
    for epoch, v in enumerate([55, 65], 1):  # ahead of the median: runs on
        good.after_val_epoch(_Runner(epoch=epoch), dict(acc=v))
    bad = OptunaPruningHook(study.ask(), 'acc')
    bad.after_val_epoch(_Runner(epoch=1), dict(acc=51))
    with pytest.raises(optuna.TrialPruned, match='step 2: acc=40'):
        bad.after_val_epoch(_Runner(epoch=2), dict(acc=40))
    assert bad.history == [[51.0], [40.0]]
    # prune=False only records
    off = OptunaPruningHook(study.ask(), 'acc', prune=False)
    off.after_val_epoch(_Runner(epoch=1), dict(acc=0))


def test_pruning_hook_failures():
    study = optuna.create_study(directions=['maximize', 'minimize'])
    hook = OptunaPruningHook(study.ask(), ['acc', 'err'])
    hook.after_val_epoch(_Runner(epoch=1), dict(acc=1, err=2))  # no report
    assert hook.history == [[1.0, 2.0]]
    with pytest.raises(KeyError, match="gave \\['acc'\\]"):
        hook.after_val_epoch(_Runner(epoch=2), dict(acc=1))
    with pytest.raises(FloatingPointError, match='err is not finite'):
        hook.after_val_epoch(_Runner(epoch=2), dict(acc=1, err=math.nan))
    from mmengine.runner import IterBasedTrainLoop
    it = OptunaPruningHook(optuna.create_study().ask(), 'acc')
    it.after_val_epoch(
        _Runner(
            epoch=0, iter=500, train_loop=object.__new__(IterBasedTrainLoop)),
        dict(acc=1))
    assert it.trial.study.trials[0].intermediate_values == {500: 1.0}
    with pytest.raises(FloatingPointError, match='loss is nan at epoch 3'):
        hook.after_train_iter(
            _Runner(epoch=2, iter=9), 0, outputs=dict(loss=math.nan))


def _trial(overrides, number=3):
    study = optuna.create_study(direction='maximize')
    t = study.ask()
    t.set_user_attr('overrides', overrides)
    study.tell(t, 90.0)
    return study, study.best_trial


def test_best_config_inherits_or_dumps(tmp_path):
    ov = {
        'optim_wrapper.optimizer.lr': 0.02,
        'train_cfg.max_epochs': 2,
        'model.backbone.out_indices': [3]
    }
    _, best = _trial(ov)
    path = write_best_config(str(TINY), best, str(tmp_path / 'best.py'))
    text = Path(path).read_text()
    assert '_base_' in text and 'values=[90.0]' in text
    cfg = Config.fromfile(path)
    assert cfg.optim_wrapper.optimizer.lr == 0.02
    assert cfg.optim_wrapper.optimizer.momentum == 0.9  # inherited
    assert cfg.train_cfg.max_epochs == 2
    # a list index cannot be merged through _base_: the whole config
    _, best = _trial({'train_pipeline.1.prob': 0.25})
    path = write_best_config(str(TINY), best, str(tmp_path / 'full.py'))
    assert '_base_' not in Path(path).read_text()
    cfg = Config.fromfile(path)
    assert cfg.train_pipeline[1].prob == 0.25
    assert cfg.model.backbone.depth == 18


def test_reports(tmp_path):
    study = optuna.create_study(direction='minimize')
    study.optimize(_quadratic, n_trials=8, catch=(RuntimeError, ))
    rows = write_trial_table(study, str(tmp_path))
    assert len(rows) == 8 and (tmp_path / 'trials.csv').is_file()
    files, notes = write_plots(study, str(tmp_path / 'plots'), ['loss'])
    names = {Path(f).name for f in files}
    assert {'history.png', 'importances.png', 'parallel_coordinate.png'
            } <= names


def test_multi_objective_reports(tmp_path):
    from mmext.hpo import write_best_configs
    study = optuna.create_study(
        directions=['maximize', 'minimize'],
        sampler=optuna.samplers.RandomSampler(0))

    def two(trial):
        lr = trial.suggest_float('optim_wrapper.optimizer.lr', 0.01, 0.1)
        trial.set_user_attr('overrides', {'optim_wrapper.optimizer.lr': lr})
        return lr, lr**2 + 0.01 * trial.number

    study.optimize(two, n_trials=5)
    paths = write_best_configs(str(TINY), study, str(tmp_path))
    assert paths and all(
        Path(p).name.startswith('pareto_trial_') for p in paths)
    files, _ = write_plots(study, str(tmp_path / 'plots'), ['acc', 'cost'])
    names = {Path(f).name for f in files}
    assert {'history_0.png', 'history_1.png', 'pareto_front.png'} <= names


def test_objective_reduce_and_fail_reason(tmp_path):
    from mmext.hpo import ConfigObjective, load_space
    from mmext.hpo.objective import _reason
    sp = tmp_path / 's.py'
    sp.write_text('from optuna.distributions import FloatDistribution as F\n'
                  "space = {'optim_wrapper.optimizer.lr': F(0.01, 0.1)}\n")
    obj = ConfigObjective(
        str(TINY),
        load_space(str(sp)),
        str(tmp_path), ['acc', 'err'],
        reduce='best',
        directions=['maximize', 'minimize'])
    hist = [[50.0, 3.0], [70.0, 2.0], [60.0, 1.0]]
    assert obj._reduce(hist) == [70.0, 1.0]
    obj.reduce = 'last'
    assert obj._reduce(hist) == [60.0, 1.0]
    with pytest.raises(RuntimeError, match='without a validation'):
        obj._reduce([])
    assert _reason(RuntimeError('CUDA out of memory. Tried')).startswith(
        'out of memory: RuntimeError')
    assert _reason(MemoryError()).startswith('out of memory')


def test_hyperband_prunes_through_the_hook():
    # Hyperband's brackets hash the study name: fix it
    study = optuna.create_study(
        study_name='hb',
        direction='maximize',
        sampler=optuna.samplers.RandomSampler(0),
        pruner=make_pruner('hyperband', min_resource=1, max_resource=9))

    def objective(trial):
        quality = trial.suggest_float('q', 0, 1)
        hook = OptunaPruningHook(trial, 'acc')
        for epoch in range(1, 10):
            hook.after_val_epoch(
                _Runner(epoch=epoch), dict(acc=quality * epoch))
        return hook.history[-1][0]

    study.optimize(objective, n_trials=20)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    # lagging trials stopped before their last epoch
    assert sum(t.last_step < 9 for t in pruned) >= 3


def _dead_pid():
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize('kind', ['sqlite', 'journal'])
def test_trials_of_dead_processes_fail_on_resume(tmp_path, kind):
    import os
    import socket

    from mmext.hpo.objective import worker_id
    from mmext.hpo.study import fail_dead_trials
    url = (f'sqlite:///{tmp_path}/s.db'
           if kind == 'sqlite' else f'journal:{tmp_path}/s.log')
    study = open_study(make_storage(url), 's', ['minimize'])
    host = socket.gethostname()
    workers = {
        'dead': f'{host}/{_dead_pid()}/1',
        'live': worker_id(),
        # this process's pid, but started at another time: a reused pid
        'reused': f'{host}/{os.getpid()}/1',
        'elsewhere': f'{host}-other/{_dead_pid()}/1',
        'none': None,
    }
    trials = {}
    for name, worker in workers.items():
        trial = study.ask({'x': optuna.distributions.FloatDistribution(0, 1)})
        if worker:
            trial.set_user_attr('worker', worker)
        trials[name] = trial.number
    marked = fail_dead_trials(study)
    assert set(marked) == {trials['dead'], trials['reused']}
    states = {t.number: t for t in study.get_trials()}
    dead = states[trials['dead']]
    assert dead.state == TrialState.FAIL
    assert dead.user_attrs['fail_reason'].startswith('process ')
    assert 'died (killed or crashed) during the trial; marked failed on ' \
        'resume' in dead.user_attrs['fail_reason']
    for name in ('live', 'elsewhere', 'none'):  # cannot tell: left alone
        assert states[trials[name]].state == TrialState.RUNNING
    # RDB: each dead trial re-queued once with its parameters
    waiting = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    if kind == 'sqlite':
        assert sorted(t.params['x']
                      for t in waiting) == sorted(states[n].params['x']
                                                  for n in marked)
    else:
        assert waiting == []
    assert fail_dead_trials(study) == {}  # idempotent


def test_heartbeat_marks_trials_of_other_hosts(tmp_path):
    import time

    from mmext.hpo.study import fail_dead_trials
    storage = make_storage(f'sqlite:///{tmp_path}/s.db', heartbeat_interval=1)
    study = open_study(storage, 's', ['minimize'])
    quiet = study.ask()
    quiet.set_user_attr('worker', 'far-away-host/1/1')
    storage.record_heartbeat(quiet._trial_id)
    assert fail_dead_trials(study) == {}  # heartbeat fresh
    time.sleep(3.5)  # grace period 2 x 1 s; sqlite's clock has 1 s steps
    marked = fail_dead_trials(study)
    assert marked == {
        0: 'process died (no heartbeat for over 2 s); marked failed on '
        'resume'
    }
    assert study.trials[0].state == TrialState.FAIL


def test_failure_summary_groups_reasons():
    from mmext.hpo.study_report import failure_summary
    rows = [
        dict(
            state='FAIL',
            fail_reason=f'SpaceError: s.py: overrides(trial '
            f'{n}) raised ValueError: boom') for n in range(3)
    ] + [
        dict(state='FAIL', fail_reason='RuntimeError: shapes\nmore'),
        dict(state='FAIL', fail_reason=None),
        dict(state='COMPLETE', fail_reason=None)
    ]
    assert failure_summary(rows) == (
        '5 failed: 3x SpaceError: s.py: overrides(trial 0) raised '
        'ValueError: boom; 1x RuntimeError: shapes; 1x no reason recorded '
        '(interrupted?)')
    assert failure_summary(rows, limit=1).endswith('; 2 other reasons')
