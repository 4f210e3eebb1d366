# Copyright (c) mmext contributors. All rights reserved.
"""tools/hpo.py end to end on configs/tiny: real training trials, a pruned
trial, two failed trials recorded as FAIL with their reasons (NaN loss, an
exception), a resumed study, and the best config re-trained with the same
result."""
import json
import sqlite3

import pytest

from ..conftest import ROOT, run_tool

HPO = ROOT / 'tools' / 'hpo.py'
TRAIN = ROOT / 'tools' / 'train.py'
CFG = ROOT / 'configs' / 'tiny' / 'resnet18_1xb8-scratch_tiny-64px.py'

# planted trials: 0 learns (2 epochs); 1 cannot (lr ~ 0, 3 epochs): pruned
# after epoch 2 once trial 0 is ahead; 2 diverges (NaN lr -> NaN loss); 3 and
# 4 crash (wrong head width)
SPACE = '''
PLAN = ['good', 'slow', 'nan', 'broken', 'broken']


def overrides(trial):
    case = PLAN[trial.number % len(PLAN)]
    if case == 'broken':
        return {'model.head.in_channels': 7}
    if case == 'good':
        return {'optim_wrapper.optimizer.lr': 0.02,
                'train_dataloader.batch_size': 4, 'train_cfg.max_epochs': 2}
    lr = {'slow': 1e-9, 'nan': float('nan')}[case]
    return {'optim_wrapper.optimizer.lr': lr, 'train_cfg.max_epochs': 3}


metric = 'accuracy/top1'
'''


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    from mmext.testing import make_image_folder
    ws = tmp_path_factory.mktemp('hpo_ws')
    make_image_folder(ws / 'data' / 'tiny', per_class=16, size=32)
    (ws / 'space.py').write_text(SPACE)
    return ws


def _hpo(ws, n_trials):
    run_tool([
        HPO, CFG, '--space', 'space.py', '--work-dir', 'hpo', '--n-trials',
        n_trials, '--pruner', 'median', '--startup-trials', 1,
        '--pruner-warmup', 2
    ],
             cwd=ws)
    return json.loads((ws / 'hpo' / 'summary.json').read_text())


def _intermediate(db, number):
    return dict(
        db.execute(
            'SELECT i.step, i.intermediate_value FROM '
            'trial_intermediate_values i JOIN trials t '
            'ON t.trial_id = i.trial_id WHERE t.number = ?', (number, )))


def _end_to_end(ws):
    first = _hpo(ws, 4)
    assert first['ran'] == 4
    assert first['states'] == {'COMPLETE': 1, 'PRUNED': 1, 'FAIL': 2}
    reasons = {f['number']: f['reason'] for f in first['failed']}
    assert 'FloatingPointError' in reasons[2] and 'loss' in reasons[2]
    assert 'RuntimeError' in reasons[3]
    db = sqlite3.connect(ws / 'hpo' / 'study.db')
    # failed trials have no value (the pruned one keeps its last report)
    scored = {
        n
        for (n, ) in db.execute(
            'SELECT t.number FROM trials t JOIN trial_values v '
            'ON t.trial_id = v.trial_id')
    }
    assert scored == {0, 1}
    # pruning stopped trial 1 after epoch 2 of 3
    assert sorted(_intermediate(db, 1)) == [1, 2]
    assert not (ws / 'hpo' / 'trial_1' / 'epoch_3.pth').exists()
    assert (ws / 'hpo' / 'plots' / 'history.png').is_file()
    # resumed: the study holds 4 finished trials, so 5 runs one more
    second = _hpo(ws, 5)
    assert second['ran'] == 1
    assert second['states'] == {'COMPLETE': 1, 'PRUNED': 1, 'FAIL': 3}
    # the best config re-trains to the trial's score
    assert second['best'][0]['number'] == 0
    out = run_tool([TRAIN, 'hpo/best_config.py', '--work-dir', 'retrain'],
                   cwd=ws)
    log = out.stdout + out.stderr
    acc = float(log.split('accuracy/top1: ')[-1].split()[0])
    assert acc == pytest.approx(second['best'][0]['values'][0], abs=1e-3)
    assert acc > 60  # chance is 33


def _no_traceback(proc):
    out = proc.stdout + proc.stderr
    assert 'Traceback' not in out, out[-3000:]
    return proc.stderr.strip().splitlines()[-1]


def _refuses_before_training(ws, case):
    space = f'space_{case}.py'
    if case == 'syntax':
        (ws / space).write_text("metric = 'accuracy/top1'\nspace = {\n")
        args = []
    else:
        (ws / space).write_text(SPACE)
        args = ['--metric', 'accuracy/top2']
    proc = run_tool(
        [
            HPO, CFG, '--space', space, '--work-dir', f'refused_{case}',
            '--n-trials', 3
        ] + args,
        cwd=ws,
        check=False)
    assert proc.returncode == 1
    last = _no_traceback(proc)
    if case == 'metric':
        assert last == (f"hpo: --metric 'accuracy/top2' is not a validation "
                        f'metric of {CFG}: did you mean \'accuracy/top1\'? '
                        'its val_evaluator gives accuracy/top1')
    else:
        assert last.startswith(f'hpo: {space} line 2: syntax error (')
    assert not (ws / f'refused_{case}').exists()  # nothing trained


RAISING_SPACE = '''
def overrides(trial):
    if trial.number % 2 == 0:
        raise ValueError('planted')
    return {'model.head.in_channels': 7, 'train_cfg.max_epochs': 1}


metric = 'accuracy/top1'
'''


def _raising_overrides_and_all_failed(ws):
    (ws / 'space_raising.py').write_text(RAISING_SPACE)
    proc = run_tool([
        HPO, CFG, '--space', 'space_raising.py', '--work-dir', 'allfail',
        '--n-trials', 2
    ],
                    cwd=ws,
                    check=False)
    # the raising trial failed, the run went on to trial 1, which failed too
    assert proc.returncode == 1
    last = _no_traceback(proc)
    assert last.startswith(
        "hpo: study 'resnet18_1xb8-scratch_tiny-64px-space_raising': all 2 "
        'failed: 1x SpaceError: space_raising.py: overrides(trial 0) raised '
        'ValueError: planted; 1x RuntimeError: ')
    assert last.endswith('(trials.csv in allfail)')
    rows = json.loads((ws / 'allfail' / 'trials.json').read_text())
    assert [r['state'] for r in rows] == ['FAIL', 'FAIL']
    assert rows[0]['fail_reason'] == ('SpaceError: space_raising.py: '
                                      'overrides(trial 0) raised ValueError: '
                                      'planted')
    # the traceback is kept beside the trial, not on the console
    assert 'ValueError: planted' in (ws / 'allfail' / 'trial_0' /
                                     'traceback.txt').read_text()


KILL_SPACE = '''
import os

from optuna.distributions import FloatDistribution

space = {'optim_wrapper.optimizer.lr': FloatDistribution(0.01, 0.1)}
fixed = {'train_cfg.max_epochs': int(os.environ['HPO_TEST_EPOCHS'])}
metric = 'accuracy/top1'
'''


def _killed_trial_fails_on_resume(ws):
    import os
    import signal
    import subprocess
    import sys
    import time
    (ws / 'space_kill.py').write_text(KILL_SPACE)
    args = [
        HPO, CFG, '--space', 'space_kill.py', '--work-dir', 'killed',
        '--n-trials', 2
    ]
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        HPO_TEST_EPOCHS='500',
        PYTHONPATH=os.pathsep.join(
            [str(ROOT), os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.Popen(
        [sys.executable] + list(map(str, args)),
        cwd=ws,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not (ws / 'killed' / 'trial_0').exists():
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    db = sqlite3.connect(ws / 'killed' / 'study.db')
    assert list(db.execute('SELECT number, state FROM trials')) == [
        (0, 'RUNNING')
    ]
    db.close()
    out = run_tool(args, cwd=ws, env=dict(HPO_TEST_EPOCHS='1'))
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f'trial 0: FAIL process {proc.pid} on ')
    assert lines[1].startswith(
        "resuming study 'resnet18_1xb8-scratch_tiny-64px-space_kill' "
        '(sqlite:///') and lines[1].endswith(
            ': 0 finished (0 complete, 0 pruned), 1 failed, 0 running; '
            '1 more trial(s) to reach --n-trials 2')
    summary = json.loads((ws / 'killed' / 'summary.json').read_text())
    reason = summary['marked_failed_on_resume']['0']
    assert reason.endswith('died (killed or crashed) during the trial; '
                           'marked failed on resume')
    assert summary['failed'] == [dict(number=0, reason=reason)]
    # re-queued once with the same parameters, and trained
    assert summary['states'] == {'FAIL': 1, 'COMPLETE': 1}
    rows = json.loads((ws / 'killed' / 'trials.json').read_text())
    assert rows[1]['params'] == rows[0]['params']


CONSOLE_SPACE = '''
from optuna.distributions import FloatDistribution

space = {'optim_wrapper.optimizer.lr': FloatDistribution(0.01, 0.1),
         'optim_wrapper.optimizer.momentum': FloatDistribution(0.5, 0.9)}
fixed = {'train_cfg.max_epochs': 1}


def overrides(trial):
    if trial.number == 1:  # a failing trial: wrong head width
        return {'model.head.in_channels': 7}
    return {}


metric = 'accuracy/top1'
'''


def _console_is_one_line_per_trial(ws):
    """3 trials: the console holds the study line, one line per trial with
    its parameters, value or FAIL reason and the best so far, and the
    result; mmengine's environment / config / iteration logs are in each
    trial's train.log only."""
    (ws / 'space_console.py').write_text(CONSOLE_SPACE)
    args = [
        HPO, CFG, '--space', 'space_console.py', '--work-dir', 'console',
        '--n-trials', 3, '--pruner', 'none'
    ]
    out = run_tool(args, cwd=ws)
    lines = (out.stdout + out.stderr).splitlines()
    assert len(lines) < 20, '\n'.join(lines)
    assert not any('mmengine' in x or 'Config:' in x for x in lines)
    study = "'resnet18_1xb8-scratch_tiny-64px-space_console'"
    assert lines[0].startswith(f'new study {study} (sqlite:///')
    assert lines[0].endswith('; 3 more trial(s) to reach --n-trials 3')
    rows = json.loads((ws / 'console' / 'trials.json').read_text())
    assert [r['state'] for r in rows] == ['COMPLETE', 'FAIL', 'COMPLETE']
    best = None
    for row, line in zip(rows, lines[1:4]):
        n, params = row['number'], row['params']
        lr = params['optim_wrapper.optimizer.lr']
        assert line.startswith(f'trial {n} (')
        assert f'lr={lr:.4g}, momentum=' in line  # short names, 4 digits
        if row['state'] == 'FAIL':
            assert (' -> FAIL RuntimeError: mat1 and mat2 shapes cannot be '
                    'multiplied') in line
            assert f'(see console/trial_{n}/traceback.txt)' in line
        else:
            value = row['values'][0]
            assert f' -> accuracy/top1 {value:.4g} | ' in line
            if best is None or value > best[0]:
                best = (value, n)
        assert line.endswith(f'| best so far accuracy/top1 {best[0]:.4g} '
                             f'(trial {best[1]})')
    assert lines[4] == (f'study {study}: 2 complete, 0 pruned, 1 failed '
                        '(3 run now)')
    assert lines[5].startswith(f'best trial {best[1]}: accuracy/top1 ')
    # the Runner's dump is in the trial's log file
    log = (ws / 'console' / 'trial_0' / 'train.log').read_text()
    for part in ('System environment:', 'Config:', 'Epoch(train) [1][6/6]',
                 'accuracy/top1: '):
        assert part in log
    assert 'experiment_name = ' in log and "work_dir = 'console/trial_0'" \
        in log
    # resumed: where the study stands, nothing to run
    again = run_tool(args, cwd=ws)
    assert again.stdout.splitlines()[0].endswith(
        ': 2 finished (2 complete, 0 pruned), 1 failed, 0 running; '
        '--n-trials 3 reached, nothing to run')
    assert len((again.stdout + again.stderr).splitlines()) < 10


# ------------------------------------------------------------------- tests
# Each test's tool runs and checks run in the background from the start of
# the module, two at a time (tests.conftest.ToolsAhead); a test waits for
# its own and fails with what failed there.
@pytest.fixture(scope='module')
def runs(tools_ahead, workspace):
    start = tools_ahead.start
    start('end_to_end', ['test_hpo_end_to_end'], _end_to_end, workspace)
    start('console', ['test_hpo_console_is_one_line_per_trial'],
          _console_is_one_line_per_trial, workspace)
    start('killed', ['test_hpo_killed_trial_fails_on_resume'],
          _killed_trial_fails_on_resume, workspace)
    start('raising', ['test_hpo_raising_overrides_and_all_failed'],
          _raising_overrides_and_all_failed, workspace)
    for case in ('metric', 'syntax'):
        start(f'refuses_{case}', ['test_hpo_refuses_before_training'],
              _refuses_before_training, workspace, case)
    return tools_ahead


def test_hpo_end_to_end(runs):
    runs['end_to_end']


@pytest.mark.parametrize('case', ['metric', 'syntax'])
def test_hpo_refuses_before_training(runs, case):
    runs[f'refuses_{case}']


def test_hpo_raising_overrides_and_all_failed(runs):
    runs['raising']


def test_hpo_killed_trial_fails_on_resume(runs):
    runs['killed']


def test_hpo_console_is_one_line_per_trial(runs):
    runs['console']
