# Copyright (c) mmext contributors. All rights reserved.
"""mim train / test / run / search from a regular (non-editable) install."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import ROOT, TINY_CONFIG, run_tool


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """``pip install --no-deps`` of this checkout into a private target."""
    if _mim_bin() is None:
        pytest.fail('openmim is not installed: pip install -r '
                    'requirements/mim.txt')
    src = tmp_path_factory.mktemp('src')
    # build from a copy: a build must not depend on (or leave) local state
    shutil.copytree(
        ROOT,
        src / 'mmext',
        ignore=shutil.ignore_patterns('.venv', '.git', 'data', 'work_dirs',
                                      'build', '*.egg-info', '__pycache__',
                                      '.mim', 'pretrain_pth'))
    target = tmp_path_factory.mktemp('site')
    subprocess.run([
        sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
        '--no-build-isolation', '--target',
        str(target),
        str(src / 'mmext')
    ],
                   check=True,
                   capture_output=True)
    assert (target / 'mmext/.mim/configs/tiny' / TINY_CONFIG.name).is_file()
    assert (target / 'mmext/.mim/tools/train.py').is_file()
    return target


def _mim_bin():
    """The ``mim`` of this interpreter's environment (venv need not be
    activated)."""
    return shutil.which('mim', path=str(Path(sys.executable).parent))


def _mim(args, cwd, target, check=True):
    # PYTHONPATH puts the installed copy before the checkout
    return run_tool(
        [_mim_bin()] + args,
        cwd=cwd,
        check=check,
        env={'PYTHONPATH': str(target)})


def test_mim_train_test_search(installed, tiny_workspace):
    ws = tiny_workspace
    out = _mim([
        'train', 'mmext', TINY_CONFIG.name, '--work-dir', 'work_dirs/mim',
        '--cfg-options', 'train_cfg.max_epochs=1'
    ], ws, installed)
    assert str(installed / 'mmext/.mim/tools/train.py') in out.stdout
    assert (ws / 'work_dirs/mim/epoch_1.pth').is_file()
    out = _mim([
        'test', 'mmext', TINY_CONFIG.name, '--checkpoint',
        'work_dirs/mim/epoch_1.pth', '--work-dir', 'work_dirs/mim'
    ], ws, installed)
    assert 'accuracy/top1' in out.stdout + out.stderr
    out = _mim(['search', 'mmext'], ws, installed)
    assert TINY_CONFIG.stem in out.stdout


def test_mim_run_tool(installed, tiny_workspace, tmp_path):
    out = _mim([
        'run', 'mmext', 'misc:make_tiny_data', '--out',
        str(tmp_path / 'tiny'), '--per-class', '2'
    ], tmp_path, installed)
    assert len(list((tmp_path / 'tiny' / 'train').rglob('*.png'))) == 6
    assert 'wrote' in out.stdout
