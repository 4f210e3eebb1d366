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


def _mim_train_test_search(installed, ws):
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


def _mim_run_tool(installed, tmp_path):
    out = _mim([
        'run', 'mmext', 'misc:make_tiny_data', '--out',
        str(tmp_path / 'tiny'), '--per-class', '2'
    ], tmp_path, installed)
    assert len(list((tmp_path / 'tiny' / 'train').rglob('*.png'))) == 6
    assert 'wrote' in out.stdout


def _load_setup():
    import importlib.util
    spec = importlib.util.spec_from_file_location('mmext_setup',
                                                  ROOT / 'setup.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # setup() runs only as __main__
    return module


def _mim_finds_an_editable_checkout(tmp_path):
    """``make setup``'s layout: pip's editable metadata in site-packages plus
    ``python setup.py mim_link`` (site-packages/mmext -> the checkout)."""
    from importlib.metadata import distribution
    if _mim_bin() is None:
        pytest.fail('openmim is not installed: pip install -r '
                    'requirements/mim.txt')
    dist_info = Path(str(distribution('mmext')._path))
    site = tmp_path / 'site'
    shutil.copytree(dist_info, site / dist_info.name)
    # pip's metadata alone (what `pip install -e .` leaves): mim looks for
    # site/mmext/.mim/tools and fails
    bare = _mim(['run', 'mmext', 'misc:make_tiny_data', '--out', 'x'],
                tmp_path,
                site,
                check=False)
    assert bare.returncode != 0
    setup = _load_setup()
    assert setup.link_for_mim(str(site)).endswith(str(ROOT / 'mmext'))
    assert setup.link_for_mim(str(site)).endswith('(already there)')
    out = _mim([
        'run', 'mmext', 'misc:make_tiny_data', '--out',
        str(tmp_path / 'tiny'), '--per-class', '1'
    ], tmp_path, site)
    assert 'wrote' in out.stdout
    assert len(list((tmp_path / 'tiny' / 'train').rglob('*.png'))) == 3
    out = _mim(['search', 'mmext'], tmp_path, site)
    assert TINY_CONFIG.stem in out.stdout
    assert 'weights_origin' in out.stdout
    # a regular install in the way is left alone
    regular = tmp_path / 'regular'
    (regular / 'mmext').mkdir(parents=True)
    assert 'left as it is' in setup.link_for_mim(str(regular))
    assert not (regular / 'mmext').is_symlink()


# The mim runs go on in the background, two at a time
# (tests.conftest.ToolsAhead): the editable-checkout case from the start, the
# installed copy's once pip has installed it; each test waits for its own.
@pytest.fixture(scope='module')
def runs(tools_ahead, tiny_workspace, tmp_path_factory, request):
    tools_ahead.start('editable', ['test_mim_finds_an_editable_checkout'],
                      _mim_finds_an_editable_checkout,
                      tmp_path_factory.mktemp('mim_editable'))
    if tools_ahead.selected('test_mim_train_test_search', 'test_mim_run_tool'):
        installed = request.getfixturevalue('installed')
        tools_ahead.start('train_test_search', ['test_mim_train_test_search'],
                          _mim_train_test_search, installed, tiny_workspace)
        tools_ahead.start('run_tool', ['test_mim_run_tool'], _mim_run_tool,
                          installed, tmp_path_factory.mktemp('mim_run'))
    return tools_ahead


def test_mim_train_test_search(runs):
    runs['train_test_search']


def test_mim_run_tool(runs):
    runs['run_tool']


def test_mim_finds_an_editable_checkout(runs):
    runs['editable']


def test_search_shows_where_the_weights_come_from():
    """``Weights Origin`` (``weights_origin`` in ``mim search mmext``): the
    released source of each file a config starts from."""
    import yaml

    from mmext.apis.metafile import weight_origins
    butd = weight_origins(
        str(ROOT / 'configs/butd/butd_faster-rcnn_r101-caffe-c4_vg.py'))
    assert butd == ('butd_faster-rcnn_r101-caffe-c4_vg.pth <- https://'
                    'storage.googleapis.com/up-down-attention/'
                    'resnet101_faster_rcnn_final.caffemodel')
    vilbert = weight_origins(
        str(ROOT / 'configs/vilbert/'
            'vilbert-cls_vit-base-p16-bert-base_1xb20-ft_hateful-memes.py'))
    assert vilbert.startswith('bert-base-uncased <- https://huggingface.co/'
                              'google-bert/bert-base-uncased; '
                              'vit-base-p16_timm-in21k-ft-in1k.pth <- ')
    assert weight_origins(str(TINY_CONFIG)) is None  # from scratch
    # the stored metafiles say the same
    for meta in (ROOT / 'configs').glob('*/metafile.yml'):
        for model in yaml.safe_load(meta.read_text())['Models']:
            assert model['Metadata'].get('Weights Origin') == \
                weight_origins(str(ROOT / model['Config'])), model['Name']
