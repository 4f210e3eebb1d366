# Copyright (c) mmext contributors. All rights reserved.
"""2-process DDP on CPU through tools/dist_train.sh (torchrun + gloo)."""
import json

import torch

from mmext.utils import safe_torch_load
from ..conftest import (ROOT, TINY_CONFIG, TINY_R2GEN_CONFIG, free_port,
                        run_tool)


def _write_cfg(path, base, extra=''):
    path.write_text(
        f"_base_ = ['{base}']\n"
        "custom_hooks = [dict(type='DistConsistencyHook', interval=1, "
        "dump_dir='ranks')]\n" + extra)


def test_two_process_ddp_identical_ranks(tiny_workspace):
    ws = tiny_workspace
    cfg = ws / 'ddp_tiny.py'
    _write_cfg(cfg, TINY_CONFIG)
    proc = run_tool([
        'bash', ROOT / 'tools/dist_train.sh', cfg, '2', '--work-dir',
        'work_dirs/ddp', '--cfg-options', 'train_cfg.max_epochs=2'
    ],
                    cwd=ws,
                    env={'PORT': free_port()})
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log
    assert 'identical on 2 ranks' in log
    r0 = torch.load(ws / 'work_dirs/ddp/ranks/rank0.pth', weights_only=True)
    r1 = torch.load(ws / 'work_dirs/ddp/ranks/rank1.pth', weights_only=True)
    assert r0.keys() == r1.keys()
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    # the saved checkpoint holds those weights and tests correctly
    ckpt = safe_torch_load(str(ws / 'work_dirs/ddp/epoch_2.pth'))
    assert all(torch.equal(ckpt['state_dict'][k], r0[k]) for k in r0)
    run_tool([
        ROOT / 'tools/test.py', TINY_CONFIG, 'work_dirs/ddp/epoch_2.pth',
        '--out', 'work_dirs/ddp/m.json', '--out-item', 'metrics'
    ],
             cwd=ws)
    acc = json.loads((ws / 'work_dirs/ddp/m.json').read_text())
    assert acc['accuracy/top1'] > 60


def test_two_process_ddp_r2gen(tmp_path):
    """The report generator trains under DDP too (R2Gen's own code runs on
    one GPU): identical ranks, and the checkpoint generates and scores
    reports."""
    from mmext.testing.reports import make_iu_xray
    make_iu_xray(tmp_path / 'data/tiny_iu_xray', n_train=16, n_val=4, n_test=4)
    cfg = tmp_path / 'ddp_r2gen.py'
    _write_cfg(cfg, TINY_R2GEN_CONFIG)
    proc = run_tool([
        'bash', ROOT / 'tools/dist_train.sh', cfg, '2', '--work-dir',
        'work_dirs/ddp', '--cfg-options', 'train_cfg.max_epochs=1'
    ],
                    cwd=tmp_path,
                    env={'PORT': free_port()})
    assert 'identical on 2 ranks' in proc.stdout + proc.stderr
    r0 = torch.load(
        tmp_path / 'work_dirs/ddp/ranks/rank0.pth', weights_only=True)
    r1 = torch.load(
        tmp_path / 'work_dirs/ddp/ranks/rank1.pth', weights_only=True)
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    run_tool([
        ROOT / 'tools/test.py', TINY_R2GEN_CONFIG, 'work_dirs/ddp/epoch_1.pth',
        '--out', 'work_dirs/ddp/m.json', '--out-item', 'metrics'
    ],
             cwd=tmp_path)
    metrics = json.loads((tmp_path / 'work_dirs/ddp/m.json').read_text())
    assert any('BLEU_4' in k for k in metrics), metrics
