# Copyright (c) mmext contributors. All rights reserved.
"""mmext.apis.tool_runs: the arguments of tools/train.py and tools/test.py
and their merge into the config, in process (the tools' runs themselves:
tests/test_tools/test_train_test_cycle.py)."""
from copy import deepcopy

import pytest
from mmengine.config import Config

from mmext.apis.tool_runs import (build_test_parser, build_train_parser,
                                  merge_test_args, merge_train_args, run_test)
from tests.conftest import TINY_CONFIG


@pytest.fixture(scope='module')
def tiny_cfg():
    return Config.fromfile(str(TINY_CONFIG))


def _train(cfg, *argv):
    args = build_train_parser().parse_args([str(TINY_CONFIG), *argv])
    return merge_train_args(deepcopy(cfg), args)


def _test(cfg, *argv):
    args = build_test_parser().parse_args([str(TINY_CONFIG), 'ck.pth', *argv])
    return merge_test_args(deepcopy(cfg), args)


def test_train_work_dir_resume_and_loader_defaults(tiny_cfg):
    cfg = _train(tiny_cfg)
    assert cfg.work_dir == './work_dirs/resnet18_1xb8-scratch_tiny-64px'
    assert cfg.launcher == 'none' and not cfg.get('resume')
    loader = cfg.train_dataloader
    assert loader.pin_memory is True
    # no worker processes, so none to keep alive
    assert loader.persistent_workers is (loader.num_workers > 0)

    cfg = _train(tiny_cfg, '--work-dir', 'w', '--resume')
    assert (cfg.work_dir, cfg.resume, cfg.load_from) == ('w', True, None)
    cfg = _train(tiny_cfg, '--resume', 'w/epoch_1.pth', '--no-validate')
    assert (cfg.resume, cfg.load_from) == (True, 'w/epoch_1.pth')
    assert cfg.val_dataloader is None and cfg.val_cfg is None


def test_train_cfg_options_win_and_amp(tiny_cfg):
    cfg = _train(tiny_cfg, '--amp', '--no-pin-memory', '--cfg-options',
                 'train_dataloader.num_workers=2')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.train_dataloader.pin_memory is False
    assert cfg.train_dataloader.num_workers == 2
    assert cfg.train_dataloader.persistent_workers is True


def test_test_checkpoint_loader_and_tta(tiny_cfg):
    cfg = _test(tiny_cfg, '--work-dir', 't', '--no-pin-memory')
    assert (cfg.work_dir, cfg.load_from) == ('t', 'ck.pth')
    assert cfg.test_dataloader.pin_memory is False
    assert cfg.test_dataloader.collate_fn == dict(type='default_collate')
    model = tiny_cfg.model.type
    cfg = _test(tiny_cfg, '--tta')
    assert cfg.model.type == 'mmpretrain.AverageClsScoreTTA'
    assert cfg.model.module.type == model
    flips = cfg.test_dataloader.dataset.pipeline[-1]
    assert flips.type == 'TestTimeAug'


def test_test_out_item_needs_out():
    args = build_test_parser().parse_args(
        ['cfg.py', 'ck.pth', '--out-item', 'metrics'])
    with pytest.raises(ValueError, match='--out'):
        run_test(args)
