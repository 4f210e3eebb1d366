# Copyright (c) mmext contributors. All rights reserved.
"""tools/train.py → --resume (auto and explicit) → tools/test.py on torch
>= 2.6 with weights_only loading, and configs that fail before training.

The module's ~20 tool runs start up front (:class:`tests.conftest.ToolsAhead`,
two at a time); each test waits for its own and checks what it printed and
wrote."""
import json

import pytest
import torch

from mmext.utils import safe_torch_load
from ..conftest import ROOT, run_tool

TRAIN = ROOT / 'tools' / 'train.py'
TEST = ROOT / 'tools' / 'test.py'
CFG = ROOT / 'configs' / 'tiny' / 'resnet18_1xb8-scratch_tiny-64px.py'
VILBERT = ROOT / ('configs/vilbert/'
                  'vilbert-cls_tiny_1xb4-ft_tiny-hateful-memes.py')
NO_RNG_HOOK = 'default_hooks.rng_state.enable=False'


def _weights(path):
    return safe_torch_load(str(path))['state_dict']


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _train(ws, work, epochs, *options, resume=()):
    return run_tool([
        TRAIN, CFG, '--work-dir', work, *resume, '--cfg-options',
        f'train_cfg.max_epochs={epochs}', *options
    ],
                    cwd=ws)


def _interrupted_then_resumed(ws):
    """1 epoch, auto-resumed to 2; the epoch-1 checkpoint resumed by path
    into another work dir; the resumed checkpoint tested (metrics as JSON).
    Returns the auto-resumed run's output."""
    _train(ws, 'work_dirs/auto', 1)
    out = _train(ws, 'work_dirs/auto', 2, resume=['--resume'])
    _train(
        ws,
        'work_dirs/explicit',
        2,
        resume=['--resume', 'work_dirs/auto/epoch_1.pth'])
    # the checkpoint replaces initial weights, so a missing init_cfg file
    # does not matter
    run_tool([
        TEST, CFG, 'work_dirs/auto/epoch_2.pth', '--work-dir',
        'work_dirs/auto', '--out', 'work_dirs/auto/metrics.json', '--out-item',
        'metrics', '--cfg-options', 'model.backbone.init_cfg.type=Pretrained',
        'model.backbone.init_cfg.checkpoint=pretrain_pth/none.pth'
    ],
             cwd=ws)
    return out


def _without_rng_hook(ws):
    _train(ws, 'work_dirs/nohook', 1, NO_RNG_HOOK)
    _train(ws, 'work_dirs/nohook', 2, NO_RNG_HOOK, resume=['--resume'])


def _fails(args, cwd):
    return run_tool(args, cwd=cwd, check=False)


@pytest.fixture(scope='module')
def runs(tools_ahead, tiny_workspace, tmp_path_factory):
    """Start every tool run of the module; returns ``(runs, dirs)``:
    ``runs[key]`` waits for a run, ``dirs[key]`` is its own empty folder."""
    from ..test_utils.test_checkpoint import _WritesAFile
    ws, start = tiny_workspace, tools_ahead.start
    dirs = {
        key: tmp_path_factory.mktemp(key)
        for key in ('malicious', 'unknown_type', 'no_data', 'no_pretrained',
                    'prerun', 'no_checkpoint', 'no_bert', 'corrupt')
    }
    cycle = ['test_train_resume_test_cycle']
    start('interrupted', cycle, _interrupted_then_resumed, ws)
    start('full', cycle, _train, ws, 'work_dirs/full', 2)
    rng = ['test_resume_without_rng_hook_diverges']
    start('nohook', rng, _without_rng_hook, ws)
    start('nohook_full', rng, _train, ws, 'work_dirs/nohook_full', 2,
          NO_RNG_HOOK)

    d = dirs['malicious']
    evil = d / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _WritesAFile(d / 'pwned')}, evil)
    test = ['test_malicious_checkpoint_refused_by_cli']
    start('evil_test', test, _fails, [TEST, CFG, evil], ws)
    start('evil_resume', test, _fails,
          [TRAIN, CFG, '--work-dir', d / 'w', '--resume', evil], ws)

    start('unknown_type', ['test_unknown_type_fails_before_training'], _fails,
          [
              TRAIN, CFG, '--work-dir', dirs['unknown_type'] / 'w',
              '--cfg-options', 'model.backbone.type=ResNett'
          ], ws)
    start('no_data', ['test_missing_data_root_names_layout'], _fails,
          [TRAIN, CFG, '--work-dir', dirs['no_data'] / 'w'], dirs['no_data'])
    start('no_pretrained', ['test_missing_pretrained_fails_before_training'],
          _fails, [
              TRAIN, CFG, '--work-dir', dirs['no_pretrained'] / 'w',
              '--cfg-options', 'model.backbone.init_cfg.type=Pretrained',
              'model.backbone.init_cfg.checkpoint=pretrain_pth/nowhere.pth'
          ], ws)
    start('amp', ['test_amp_trains_on_cpu'], run_tool, [
        TRAIN, CFG, '--work-dir', 'work_dirs/amp', '--amp', '--cfg-options',
        'train_cfg.max_epochs=1'
    ], ws)
    start('prerun', ['test_prerun_check_lists_every_problem_before_any_log'],
          _fails, [
              TRAIN, CFG, '--work-dir', dirs['prerun'] / 'w', '--cfg-options',
              'model.backbone.presett=1', 'train_cfg.max_epoch=2',
              'optim_wrapper.optimizer.lrr=0.1'
          ], dirs['prerun'])
    test = ['test_missing_test_checkpoint_and_bert_folder_one_line']
    start('no_checkpoint', test, _fails,
          [TEST, CFG, 'nope.pth', '--work-dir', dirs['no_checkpoint'] / 'w'],
          ws)
    start('no_bert', test, _fails,
          [TRAIN, VILBERT, '--work-dir', dirs['no_bert'] / 'v'],
          dirs['no_bert'])

    bad = dirs['corrupt'] / 'bad.pth'
    bad.write_bytes(b'PK\x03\x04 not a zip at all' * 4)
    test = ['test_corrupt_checkpoint_one_line_in_train_and_infer']
    train = [TRAIN, CFG, '--work-dir', dirs['corrupt'] / 'w', '--resume', bad]
    start('corrupt_train', test, _fails, train, ws)
    start('corrupt_debug', test, _fails, train + ['--debug'], ws)
    image = next((ws / 'data/tiny').rglob('*.png'))
    start('corrupt_infer', test, _fails,
          [ROOT / 'tools/infer.py', image, CFG, bad], ws)
    return tools_ahead, dirs


def test_train_resume_test_cycle(runs, tiny_workspace):
    ws, (runs, _) = tiny_workspace, runs
    out = runs['interrupted']
    assert 'resumed epoch: 1' in out.stdout + out.stderr
    runs['full']
    full = _weights(ws / 'work_dirs/full/epoch_2.pth')
    assert _same(full, _weights(ws / 'work_dirs/auto/epoch_2.pth'))
    assert _same(full, _weights(ws / 'work_dirs/explicit/epoch_2.pth'))
    metrics = json.loads((ws / 'work_dirs/auto/metrics.json').read_text())
    assert metrics['accuracy/top1'] > 60  # 3 classes: chance is 33


def test_resume_without_rng_hook_diverges(runs, tiny_workspace):
    """Why RNGStateHook is in default_runtime: without it the resumed run's
    random flips differ from the uninterrupted run's."""
    ws, (runs, _) = tiny_workspace, runs
    runs['nohook']
    runs['nohook_full']
    assert not _same(
        _weights(ws / 'work_dirs/nohook_full/epoch_2.pth'),
        _weights(ws / 'work_dirs/nohook/epoch_2.pth'))


def test_malicious_checkpoint_refused_by_cli(runs):
    runs, dirs = runs
    proc = runs['evil_test']
    assert proc.returncode != 0
    assert 'refused' in proc.stderr and 'posix.system' in proc.stderr
    proc = runs['evil_resume']
    assert proc.returncode != 0 and 'refused' in proc.stderr
    assert not (dirs['malicious'] / 'pwned').exists()


def _last_line(proc):
    return proc.stderr.strip().splitlines()[-1]


def test_unknown_type_fails_before_training(runs):
    runs, dirs = runs
    proc = runs['unknown_type']
    assert proc.returncode != 0
    line = _last_line(proc)
    assert "type 'ResNett'" in line and "'model' registry" in line
    assert "did you mean 'ResNet'" in line
    assert not (dirs['unknown_type'] / 'w').exists()  # nothing started


def test_missing_data_root_names_layout(runs):
    proc = runs[0]['no_data']
    assert proc.returncode != 0
    line = _last_line(proc)
    assert "data_root 'data/tiny'" in line and 'layout' in line


def test_missing_pretrained_fails_before_training(runs):
    runs, dirs = runs
    proc = runs['no_pretrained']
    assert proc.returncode != 0
    assert "'pretrain_pth/nowhere.pth' not found" in proc.stderr
    assert 'pretrain_pth/README.md' in proc.stderr
    assert not (dirs['no_pretrained'] / 'w').exists()


def test_amp_trains_on_cpu(runs, tiny_workspace):
    """`--amp` works without a GPU (bf16 autocast; mmengine asserts one)."""
    out = runs[0]['amp']
    assert "type='AmpOptimWrapper'" in out.stdout + out.stderr
    ckpt = safe_torch_load(str(tiny_workspace / 'work_dirs/amp/epoch_1.pth'))
    assert all(
        torch.isfinite(v).all() for v in ckpt['state_dict'].values()
        if v.is_floating_point())


def _no_traceback(proc, max_lines=8):
    """Failed with a few lines (mmcv's import warning may add two), no
    traceback, and nothing on stdout (no environment / config dump)."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stdout + proc.stderr, proc.stderr
    assert len(lines) <= max_lines, proc.stderr
    assert proc.stdout.strip() == ''
    return [line for line in lines if line.startswith('tools/')]


def test_prerun_check_lists_every_problem_before_any_log(runs):
    runs, dirs = runs
    lines = _no_traceback(runs['prerun'])
    assert [line.split(':')[1].strip() for line in lines] == [
        'model.backbone.presett', 'optim_wrapper.optimizer.lrr',
        'train_cfg.max_epoch', "train_dataloader / val_dataloader / "
        "test_dataloader"
    ]
    assert "did you mean 'max_epochs'?" in lines[2]
    assert not (dirs['prerun'] / 'w').exists()  # no work dir, no logs


def test_missing_test_checkpoint_and_bert_folder_one_line(runs):
    runs, dirs = runs
    assert _no_traceback(runs['no_checkpoint']) == [
        'tools/test.py: checkpoint nope.pth does not exist: check the path '
        '(a training run writes work_dirs/<config>/epoch_N.pth)'
    ]
    assert not (dirs['no_checkpoint'] / 'w').exists()
    bert = [
        line for line in _no_traceback(runs['no_bert'])
        if line.startswith('tools/train.py: model.vilbert.text.folder:')
    ]
    assert len(bert) == 1 and 'config.json, vocab.txt' in bert[0]
    assert 'huggingface-cli download' in bert[0]
    assert not (dirs['no_bert'] / 'v').exists()


def test_corrupt_checkpoint_one_line_in_train_and_infer(runs):
    runs, _ = runs
    proc = runs['corrupt_train']
    last = _last_line(proc)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert last.startswith('tools/train.py: ') and 'bad.pth' in last
    proc = runs['corrupt_debug']
    assert proc.returncode != 0 and 'Traceback' in proc.stderr
    proc = runs['corrupt_infer']
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert 'bad.pth' in _last_line(proc)
