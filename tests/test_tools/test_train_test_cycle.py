# Copyright (c) mmext contributors. All rights reserved.
"""tools/train.py → --resume (auto and explicit) → tools/test.py on torch
>= 2.6 with weights_only loading, and configs that fail before training."""
import json

import torch

from mmext.utils import safe_torch_load
from ..conftest import ROOT, run_tool

TRAIN = ROOT / 'tools' / 'train.py'
TEST = ROOT / 'tools' / 'test.py'
CFG = ROOT / 'configs' / 'tiny' / 'resnet18_1xb8-scratch_tiny-64px.py'


def _weights(path):
    return safe_torch_load(str(path))['state_dict']


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_resume_test_cycle(tiny_workspace):
    ws = tiny_workspace
    # uninterrupted: 2 epochs
    run_tool([
        TRAIN, CFG, '--work-dir', 'work_dirs/full', '--cfg-options',
        'train_cfg.max_epochs=2'
    ],
             cwd=ws)
    # interrupted after 1 epoch, then auto-resumed to 2
    run_tool([
        TRAIN, CFG, '--work-dir', 'work_dirs/auto', '--cfg-options',
        'train_cfg.max_epochs=1'
    ],
             cwd=ws)
    out = run_tool([
        TRAIN, CFG, '--work-dir', 'work_dirs/auto', '--resume',
        '--cfg-options', 'train_cfg.max_epochs=2'
    ],
                   cwd=ws)
    assert 'resumed epoch: 1' in out.stdout + out.stderr
    full = _weights(ws / 'work_dirs/full/epoch_2.pth')
    assert _same(full, _weights(ws / 'work_dirs/auto/epoch_2.pth'))
    # explicit path, into another work dir
    run_tool([
        TRAIN, CFG, '--work-dir', 'work_dirs/explicit', '--resume',
        'work_dirs/auto/epoch_1.pth', '--cfg-options', 'train_cfg.max_epochs=2'
    ],
             cwd=ws)
    assert _same(full, _weights(ws / 'work_dirs/explicit/epoch_2.pth'))
    # test the resumed checkpoint; metrics dumped as JSON. The checkpoint
    # replaces initial weights, so a missing init_cfg file does not matter.
    run_tool([
        TEST, CFG, 'work_dirs/auto/epoch_2.pth', '--work-dir',
        'work_dirs/auto', '--out', 'work_dirs/auto/metrics.json', '--out-item',
        'metrics', '--cfg-options', 'model.backbone.init_cfg.type=Pretrained',
        'model.backbone.init_cfg.checkpoint=pretrain_pth/none.pth'
    ],
             cwd=ws)
    metrics = json.loads((ws / 'work_dirs/auto/metrics.json').read_text())
    assert metrics['accuracy/top1'] > 60  # 3 classes: chance is 33


def test_resume_without_rng_hook_diverges(tiny_workspace):
    """Why RNGStateHook is in default_runtime: without it the resumed run's
    random flips differ from the uninterrupted run's."""
    ws = tiny_workspace
    off = 'default_hooks.rng_state.enable=False'
    run_tool([
        TRAIN, CFG, '--work-dir', 'work_dirs/nohook_full', '--cfg-options',
        'train_cfg.max_epochs=2', off
    ],
             cwd=ws)
    run_tool([
        TRAIN, CFG, '--work-dir', 'work_dirs/nohook', '--cfg-options',
        'train_cfg.max_epochs=1', off
    ],
             cwd=ws)
    run_tool([
        TRAIN, CFG, '--work-dir', 'work_dirs/nohook', '--resume',
        '--cfg-options', 'train_cfg.max_epochs=2', off
    ],
             cwd=ws)
    assert not _same(
        _weights(ws / 'work_dirs/nohook_full/epoch_2.pth'),
        _weights(ws / 'work_dirs/nohook/epoch_2.pth'))


def test_malicious_checkpoint_refused_by_cli(tiny_workspace, tmp_path):
    from ..test_utils.test_checkpoint import _WritesAFile
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _WritesAFile(marker)}, evil)
    proc = run_tool([TEST, CFG, evil], cwd=tiny_workspace, check=False)
    assert proc.returncode != 0
    assert 'refused' in proc.stderr and 'posix.system' in proc.stderr
    proc = run_tool(
        [TRAIN, CFG, '--work-dir',
         str(tmp_path / 'w'), '--resume', evil],
        cwd=tiny_workspace,
        check=False)
    assert proc.returncode != 0 and 'refused' in proc.stderr
    assert not marker.exists()


def _last_line(proc):
    return proc.stderr.strip().splitlines()[-1]


def test_unknown_type_fails_before_training(tiny_workspace, tmp_path):
    proc = run_tool([
        TRAIN, CFG, '--work-dir',
        str(tmp_path / 'w'), '--cfg-options', 'model.backbone.type=ResNett'
    ],
                    cwd=tiny_workspace,
                    check=False)
    assert proc.returncode != 0
    line = _last_line(proc)
    assert "type 'ResNett'" in line and "'model' registry" in line
    assert "did you mean 'ResNet'" in line
    assert not (tmp_path / 'w').exists()  # nothing started


def test_missing_data_root_names_layout(tmp_path):
    proc = run_tool([TRAIN, CFG, '--work-dir',
                     str(tmp_path / 'w')],
                    cwd=tmp_path,
                    check=False)
    assert proc.returncode != 0
    line = _last_line(proc)
    assert "data_root 'data/tiny'" in line and 'layout' in line


def test_missing_pretrained_fails_before_training(tiny_workspace, tmp_path):
    proc = run_tool([
        TRAIN, CFG, '--work-dir',
        str(tmp_path / 'w'), '--cfg-options',
        'model.backbone.init_cfg.type=Pretrained',
        'model.backbone.init_cfg.checkpoint=pretrain_pth/nowhere.pth'
    ],
                    cwd=tiny_workspace,
                    check=False)
    assert proc.returncode != 0
    assert "'pretrain_pth/nowhere.pth' not found" in proc.stderr
    assert 'pretrain_pth/README.md' in proc.stderr
    assert not (tmp_path / 'w').exists()


def test_amp_trains_on_cpu(tiny_workspace):
    """`--amp` works without a GPU (bf16 autocast; mmengine asserts one)."""
    ws = tiny_workspace
    out = run_tool([
        TRAIN, CFG, '--work-dir', 'work_dirs/amp', '--amp', '--cfg-options',
        'train_cfg.max_epochs=1'
    ],
                   cwd=ws)
    assert "type='AmpOptimWrapper'" in out.stdout + out.stderr
    ckpt = safe_torch_load(str(ws / 'work_dirs/amp/epoch_1.pth'))
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


def test_prerun_check_lists_every_problem_before_any_log(tmp_path):
    proc = run_tool([
        TRAIN, CFG, '--work-dir',
        str(tmp_path / 'w'), '--cfg-options', 'model.backbone.presett=1',
        'train_cfg.max_epoch=2', 'optim_wrapper.optimizer.lrr=0.1'
    ],
                    cwd=tmp_path,
                    check=False)
    lines = _no_traceback(proc)
    assert [line.split(':')[1].strip() for line in lines] == [
        'model.backbone.presett', 'optim_wrapper.optimizer.lrr',
        'train_cfg.max_epoch', "train_dataloader / val_dataloader / "
        "test_dataloader"
    ]
    assert "did you mean 'max_epochs'?" in lines[2]
    assert not (tmp_path / 'w').exists()  # no work dir, no logs


def test_missing_test_checkpoint_and_bert_folder_one_line(
        tiny_workspace, tmp_path):
    proc = run_tool([TEST, CFG, 'nope.pth', '--work-dir',
                     str(tmp_path / 'w')],
                    cwd=tiny_workspace,
                    check=False)
    assert _no_traceback(proc) == [
        'tools/test.py: checkpoint nope.pth does not exist: check the path '
        '(a training run writes work_dirs/<config>/epoch_N.pth)'
    ]
    assert not (tmp_path / 'w').exists()
    vilbert = ROOT / ('configs/vilbert/'
                      'vilbert-cls_tiny_1xb4-ft_tiny-hateful-memes.py')
    proc = run_tool([TRAIN, vilbert, '--work-dir',
                     str(tmp_path / 'v')],
                    cwd=tmp_path,
                    check=False)
    bert = [
        line for line in _no_traceback(proc)
        if line.startswith('tools/train.py: model.vilbert.text.folder:')
    ]
    assert len(bert) == 1 and 'config.json, vocab.txt' in bert[0]
    assert 'huggingface-cli download' in bert[0]
    assert not (tmp_path / 'v').exists()


def test_corrupt_checkpoint_one_line_in_train_and_infer(
        tiny_workspace, tmp_path):
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'PK\x03\x04 not a zip at all' * 4)
    train = [
        TRAIN, CFG, '--work-dir',
        str(tmp_path / 'w'), '--resume',
        str(bad)
    ]
    proc = run_tool(train, cwd=tiny_workspace, check=False)
    last = _last_line(proc)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert last.startswith('tools/train.py: ') and 'bad.pth' in last
    proc = run_tool(train + ['--debug'], cwd=tiny_workspace, check=False)
    assert proc.returncode != 0 and 'Traceback' in proc.stderr
    image = next((tiny_workspace / 'data/tiny').rglob('*.png'))
    proc = run_tool([ROOT / 'tools/infer.py', image, CFG, bad],
                    cwd=tiny_workspace,
                    check=False)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert 'bad.pth' in _last_line(proc)
