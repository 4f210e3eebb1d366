# Copyright (c) mmext contributors. All rights reserved.
"""Run discovery and the comparison table on generated work dirs.

The generated files follow mmengine 0.10's layout and line format, checked
against a real tiny training (tests/test_tools/test_compare_runs.py)."""
import copy
import json
import statistics
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mmengine.config import Config

from mmext.analysis.compare import compare_runs
from mmext.analysis.compare_write import write_tables
from mmext.analysis.runs import (RunError, discover_runs, join_parts, load_run,
                                 read_scalars)
from tests.conftest import TINY_CONFIG

BASE = Config.fromfile(str(TINY_CONFIG)).to_dict()
BASE['train_cfg']['max_epochs'] = 3  # the generated runs' schedule


def tiny_config(**changes):
    """The tiny config as a dict with dotted-key ``changes``."""
    cfg = copy.deepcopy(BASE)
    for key, value in changes.items():
        *parents, leaf = key.split('__')
        d = cfg
        for p in parents:
            d = d[p]
        d[leaf] = value
    return cfg


def train_lines(epochs,
                iters=3,
                loss0=1.2,
                first_epoch=1,
                memory=None,
                rss=None):
    """mmengine ``scalars.json`` train lines (epoch-based loop)."""
    out = []
    for e in range(first_epoch, first_epoch + epochs):
        for i in range(iters):
            it = (e - 1) * iters + i + 1
            row = dict(
                lr=0.05,
                data_time=0.004,
                loss=loss0 / it,
                time=0.1 + 0.01 * it)
            if memory is not None:
                row['memory'] = memory + it
            if rss is not None:
                row['rss_mb'] = rss + it
            row.update(epoch=e, iter=it, step=it)
            out.append(row)
    return out


def val_lines(values, first_epoch=1, key='accuracy/top1'):
    return [{
        key: v,
        'data_time': 0.002,
        'time': 0.03,
        'step': first_epoch + i
    } for i, v in enumerate(values)]


def write_part(work, ts, cfg, lines, seconds=37, error=None):
    """One ``WORK/<ts>/`` folder of a training process."""
    d = Path(work) / ts
    (d / 'vis_data').mkdir(parents=True)
    Config(cfg).dump(str(d / 'vis_data' / 'config.py'))
    if lines is not None:
        (d / 'vis_data' / 'scalars.json').write_text(''.join(
            json.dumps(r) + '\n' for r in lines))
    day = f'{ts[:4]}/{ts[4:6]}/{ts[6:8]}'
    log = [f'{day} 10:00:00 - mmengine - INFO - ', 'Config:', 'x = 1']
    log.append(f'{day} 10:00:{seconds:02d} - mmengine - INFO - Epoch(train) '
               '[1][3/3]  lr: 5.0000e-02  loss: 0.5')
    if error:
        log.append(f'{day} 10:00:{seconds:02d} - mmengine - ERROR - '
                   '/x/run_status_hook.py - log_then_report - 46 - ' + error)
    (d / f'{ts}.log').write_text('\n'.join(log) + '\n')
    Config(cfg).dump(str(Path(work) / 'resnet18_1xb8-scratch_tiny-64px.py'))


def make_run(work, cfg, parts, checkpoints=(), test=None, error=None):
    """A work dir: ``parts`` are scalars lines per process, oldest first."""
    work = Path(work)
    work.mkdir(parents=True)
    for i, lines in enumerate(parts):
        write_part(
            work,
            f'20260101_1000{i:02d}',
            cfg,
            lines,
            error=error if i == len(parts) - 1 else None)
    for c in checkpoints:
        (work / c).write_bytes(b'')
    if test is not None:
        (work / 'metrics.json').write_text(json.dumps(test))
    return work


def make_matrix(root):
    """2 frozen_stages x 2 seeds, a resumed run, a crashed run, a run
    without validation."""
    root = Path(root)
    runs = {}
    for frozen in (-1, 4):
        for seed in (0, 1):
            cfg = tiny_config(
                model__backbone__frozen_stages=frozen, randomness__seed=seed)
            accs = [40.0 + 10 * seed + frozen, 60.0 + seed, 55.0 + frozen]
            name = f'flowers_f{frozen}_s{seed}'
            runs[name] = make_run(
                root / name,
                cfg, [train_lines(3) + val_lines(accs)],
                checkpoints=['epoch_3.pth'],
                test={'accuracy/top1': 50.0 + seed})
    cfg = tiny_config(model__backbone__frozen_stages=-1, randomness__seed=2)
    # resumed from epoch_1 after a crash in epoch 2 (its lines repeat)
    first = train_lines(1) + val_lines([45.0]) + train_lines(
        1, first_epoch=2, loss0=9.0)[:2]
    second = train_lines(2, first_epoch=2) + val_lines([70.0, 65.0], 2)
    runs['flowers_resumed'] = make_run(
        root / 'flowers_resumed',
        cfg, [first, second],
        checkpoints=['epoch_1.pth', 'epoch_3.pth'])
    cfg = tiny_config(model__backbone__frozen_stages=4, randomness__seed=2)
    runs['flowers_crashed'] = make_run(
        root / 'flowers_crashed',
        cfg, [train_lines(1, memory=900) + val_lines([30.0])],
        error='RuntimeError: CUDA out of memory. Tried to allocate 2 GiB')
    cfg = tiny_config(
        model__backbone__frozen_stages=4,
        randomness__seed=3,
        val_cfg=None,
        val_dataloader=None,
        val_evaluator=None)
    runs['flowers_noval'] = make_run(
        root / 'flowers_noval',
        cfg, [train_lines(3, rss=500)],
        checkpoints=['epoch_3.pth'])
    return runs


@pytest.fixture(scope='module')
def matrix(tmp_path_factory):
    root = tmp_path_factory.mktemp('runs')
    dirs = make_matrix(root)
    runs = discover_runs([str(d) for d in dirs.values()])
    tables = compare_runs(runs, 'accuracy/top1', complexity='params')
    return dirs, runs, tables


def _scalars(work):
    """Independent reading: every scalars line of every part."""
    parts = []
    for f in sorted(Path(work).glob('2*/vis_data/scalars.json')):
        lines = [json.loads(x) for x in f.read_text().splitlines()]
        parts.append(lines)
    return parts


def test_table_values_equal_scalars_files(matrix):
    dirs, runs, tables = matrix
    assert len(tables) == 1
    t = tables[0]
    rows = {r['run']: r for r in t.rows}
    for name, work in dirs.items():
        row = rows[name]
        parts = _scalars(work)
        last = parts[-1]
        vals = [x for x in last if 'accuracy/top1' in x]
        if name == 'flowers_resumed':
            vals = [x for x in parts[0] if 'accuracy/top1' in x] + vals
        if not vals:
            assert row['best'] is None and row['final'] is None
            continue
        best = max(vals, key=lambda x: x['accuracy/top1'])
        assert row['best'] == best['accuracy/top1']
        assert row['best_step'] == best['step']
        assert row['final'] == vals[-1]['accuracy/top1']
        assert row['final_step'] == vals[-1]['step']
        train = [x for x in last if 'loss' in x]
        if name == 'flowers_resumed':  # epoch 2 of part 1 was redone
            train = [x for x in parts[0] if 'loss' in x and x['epoch'] < 2
                     ] + train
        assert row['sec_per_iter'] == pytest.approx(
            statistics.median(x['time'] for x in train))
    assert rows['flowers_resumed']['best'] == 70.0
    assert rows['flowers_f4_s1']['test:accuracy/top1'] == 51.0
    assert rows['flowers_resumed']['test:accuracy/top1'] is None
    # only what differs is a column
    assert {'model.backbone.frozen_stages', 'randomness.seed'} <= set(
        t.columns)
    assert 'model.backbone.depth' not in t.columns
    assert 'train_dataloader.batch_size' not in t.columns


def test_resumed_parts_joined_in_order(matrix):
    dirs, runs, _ = matrix
    run = next(r for r in runs if r.name == 'flowers_resumed')
    assert [x['step'] for x in run.train] == list(range(1, 10))
    assert [x['step'] for x in run.val] == [1, 2, 3]
    # the crashed epoch's lines (loss0=9) were replaced by the resumed part
    assert all(x['loss'] < 2 for x in run.train)
    assert run.wall_time == 2 * 37 and len(run.logs) == 2
    assert run.status == 'finished'


def test_status_error_memory(matrix):
    _, runs, tables = matrix
    rows = {r['run']: r for r in tables[0].rows}
    crashed = rows['flowers_crashed']
    assert crashed['status'] == 'crashed'
    assert crashed['error'] == ('RuntimeError: CUDA out of memory. Tried to '
                                'allocate 2 GiB')
    assert crashed['peak_memory_mb'] == 903  # max of the memory key
    assert crashed['memory_source'] == 'GPU'
    assert rows['flowers_noval']['status'] == 'finished'
    assert rows['flowers_noval']['peak_memory_mb'] == 509
    assert rows['flowers_noval']['memory_source'] == 'CPU RSS'
    assert rows['flowers_f-1_s0']['peak_memory_mb'] is None
    assert rows['flowers_f-1_s0']['status'] == 'finished'


def test_groups_mean_std_over_seeds(matrix):
    _, _, tables = matrix
    t = tables[0]
    assert 'model.backbone.frozen_stages' in t.group_by
    assert 'randomness.seed' not in t.group_by  # seeds are repeats
    t2 = compare_runs(
        t.runs, group_by=['model.backbone.frozen_stages'], complexity=False)[0]
    by = {g['model.backbone.frozen_stages']: g for g in t2.groups}
    assert by[-1]['runs'] == 3 and by[4]['runs'] == 4
    best = [r['best'] for r in t2.rows if r['run'] in by[-1]['members']]
    assert by[-1]['best_mean'] == pytest.approx(statistics.fmean(best))
    assert by[-1]['best_std'] == pytest.approx(statistics.stdev(best))
    assert by[4]['test_mean'] == pytest.approx(50.5)  # two of four tested


def test_trainable_params_follow_freezing(matrix):
    _, _, tables = matrix
    rows = {r['run']: r for r in tables[0].rows}
    full, frozen = rows['flowers_f-1_s0'], rows['flowers_f4_s0']
    assert full['params_total'] == frozen['params_total'] > 11_000_000
    assert full['params_trainable'] == full['params_total']
    assert frozen['params_trainable'] == 512 * 3 + 3  # the head's fc only


def test_written_tables(matrix, tmp_path):
    _, _, tables = matrix
    files = write_tables(tables, str(tmp_path))
    data = json.loads(Path(files['json']).read_text())['tables'][0]
    assert [r['best']
            for r in data['rows']] == [r['best'] for r in tables[0].rows]
    md = Path(files['markdown']).read_text()
    assert '| flowers_crashed |' in md and 'RuntimeError: CUDA' in md
    assert '± ' in md  # groups of seeds
    import csv
    with open(files['csv'][0]) as f:
        rows = list(csv.DictReader(f))
    assert [float(r['best']) if r['best'] else None
            for r in rows] == [r['best'] for r in tables[0].rows]


def test_task_types_get_own_tables(tmp_path):
    r2gen = dict(
        model=dict(type='R2GenReportGenerator'),
        train_cfg=dict(by_epoch=True, max_epochs=2))
    vil = dict(
        model=dict(type='ViLBERTClassifier'),
        train_cfg=dict(by_epoch=True, max_epochs=1))
    make_run(tmp_path / 'cls', tiny_config(),
             [train_lines(1) + val_lines([50.0])])
    nlg = [
        dict(BLEU_4=b, CIDEr=c, step=e)
        for e, (b, c) in enumerate([(0.1, 0.3), (0.2, 0.25)], 1)
    ]
    make_run(tmp_path / 'r2gen', r2gen, [train_lines(2) + nlg])
    make_run(tmp_path / 'vil', vil,
             [train_lines(1) + val_lines([0.7], key='mmimdb/F1_macro')])
    runs = discover_runs([tmp_path / n for n in ('cls', 'r2gen', 'vil')])
    tables = compare_runs(runs, 'accuracy/top1', complexity=False)
    assert [(t.task.split()[0], t.metric)
            for t in tables] == [('classification', 'accuracy/top1'),
                                 ('report', 'BLEU_4'),
                                 ('ViLBERT', 'mmimdb/F1_macro')]
    assert tables[1].rows[0]['best'] == 0.2
    assert 'BLEU_4' in tables[1].notes[0]  # said why it is not top1


def test_hpo_study_trials_are_runs(tmp_path):
    optuna = pytest.importorskip('optuna')
    study_dir = tmp_path / 'hpo'
    study_dir.mkdir()
    storage = f'sqlite:///{study_dir}/study.db'
    study = optuna.create_study(
        storage=storage, study_name='s', direction='maximize')
    dist = optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)
    for n, (lr, state) in enumerate([(0.01, 'COMPLETE'), (0.05, 'FAIL')]):
        cfg = tiny_config(optim_wrapper__optimizer__lr=lr)
        val = [] if state == 'FAIL' else val_lines([61.0])
        make_run(study_dir / f'trial_{n}', cfg, [train_lines(1) + val])
        study.add_trial(
            optuna.trial.create_trial(
                params=dict(lr=lr),
                distributions=dict(lr=dist),
                state=getattr(optuna.trial.TrialState, state),
                value=61.0 if state == 'COMPLETE' else None,
                user_attrs=dict(
                    fail_reason=None if state ==
                    'COMPLETE' else 'Traceback...\nValueError: loss is nan')))
    (study_dir / 'summary.json').write_text(
        json.dumps(dict(study_name='s', storage=storage)))
    runs = discover_runs([study_dir])
    assert [r.name for r in runs] == ['hpo/trial_0', 'hpo/trial_1']
    t = compare_runs(runs, complexity=False)[0]
    assert t.columns[:3] == ['run', 'optim_wrapper.optimizer.lr', 'param:lr']
    assert [r['param:lr'] for r in t.rows] == [0.01, 0.05]
    assert [r['status'] for r in t.rows] == ['finished', 'crashed']
    assert t.rows[1]['error'] == 'ValueError: loss is nan'
    assert t.rows[0]['best'] == 61.0


def test_not_a_run_is_one_line(tmp_path):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'file.txt').write_text('x')
    for path, why in ((tmp_path / 'empty', 'not a run'),
                      (tmp_path / 'file.txt', 'not a directory'),
                      (tmp_path / 'missing', 'not a directory')):
        with pytest.raises(RunError) as e:
            load_run(str(path))
        msg = str(e.value)
        assert why in msg and str(path) in msg and '\n' not in msg


def test_join_parts_iteration_based():
    a = [dict(loss=1.0, lr=0.1, step=s) for s in range(1, 8)]
    va = [dict(acc=1, step=4)]
    b = [dict(loss=0.5, lr=0.1, step=s) for s in range(5, 9)]
    vb = [dict(acc=2, step=8)]
    train, val = join_parts([(a, va), (b, vb)])
    assert [r['step'] for r in train] == list(range(1, 9))
    assert [r['loss'] for r in train][3:5] == [1.0, 0.5]
    assert val == va + vb


def test_crash_line_from_run_status_hook(tmp_path):
    """The hook's excepthook writes the line the discovery reads."""
    from mmengine.logging import MMLogger

    from mmext.analysis.runs import _error_in
    from mmext.engine.hooks import RunStatusHook
    log = tmp_path / 'x.log'
    logger = MMLogger.get_instance(
        'compare_hook_test', log_file=str(log), log_level='INFO')
    seen = []
    old = sys.excepthook
    sys.excepthook = lambda *a: seen.append(a[0])
    try:
        hook = RunStatusHook()
        hook.before_run(type('R', (), dict(logger=logger))())
        sys.excepthook(ValueError, ValueError('context\nlast line'), None)
        hook.after_run(None)
        assert seen == [ValueError]  # the previous hook still reports
    finally:
        sys.excepthook = old
    for h in logger.handlers:
        h.flush()
    assert _error_in(str(log), True) == 'ValueError: last line'


@settings(max_examples=40)
@given(st.binary(max_size=300))
def test_scalars_fuzz(tmp_path_factory, data):
    path = tmp_path_factory.mktemp('fuzz') / 'scalars.json'
    path.write_bytes(data)
    try:
        train, val = read_scalars(str(path))
    except RunError as exc:
        msg = str(exc)
        assert str(path) in msg and '\n' not in msg
    else:
        assert all('step' in r for r in train + val)
