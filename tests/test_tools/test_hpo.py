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
        return {'optim_wrapper.optimizer.lr': 0.05,
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


def test_hpo_end_to_end(workspace):
    ws = workspace
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
