# Copyright (c) mmext contributors. All rights reserved.
import pytest
from mmengine.config import Config

from mmext.utils import PRETRAINED_SOURCES, resolve_pretrained_paths
from mmext.utils.paths import MissingPretrainedError, find_pretrained


def _cfg(path):
    return Config(
        dict(
            model=dict(
                backbone=dict(
                    init_cfg=dict(type='Pretrained', checkpoint=path)))))


def test_resolution_order(tmp_path, monkeypatch):
    cwd, env = tmp_path / 'cwd', tmp_path / 'env'
    (cwd / 'pretrain_pth').mkdir(parents=True)
    env.mkdir()
    (env / 'w.pth').write_bytes(b'x')
    monkeypatch.chdir(cwd)
    monkeypatch.setenv('MMEXT_PRETRAIN_DIR', str(env))
    # only in $MMEXT_PRETRAIN_DIR (the leading pretrain_pth/ is dropped)
    assert find_pretrained('pretrain_pth/w.pth') == str(env / 'w.pth')
    # the current directory wins over the environment
    (cwd / 'pretrain_pth' / 'w.pth').write_bytes(b'x')
    cfg = resolve_pretrained_paths(_cfg('pretrain_pth/w.pth'))
    assert cfg.model.backbone.init_cfg.checkpoint == str(cwd / 'pretrain_pth' /
                                                         'w.pth')
    # absolute paths are kept as given
    assert find_pretrained(str(env / 'w.pth')) == str(env / 'w.pth')
    assert find_pretrained(str(env / 'nope.pth')) is None


def test_missing_file_names_the_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('MMEXT_PRETRAIN_DIR', raising=False)
    monkeypatch.setitem(PRETRAINED_SOURCES, 'x.pth',
                        'python tools/model_converters/make_x.py')
    cfg = _cfg('pretrain_pth/x.pth')
    cfg.load_from = 'work_dirs/stage1/epoch_3.pth'
    with pytest.raises(MissingPretrainedError) as e:
        resolve_pretrained_paths(cfg)
    lines = str(e.value).splitlines()
    assert len(lines) == 2
    assert 'pretrain_pth/x.pth' in lines[0]
    assert 'make_x.py' in lines[0]
    assert 'train the stage that writes it' in lines[1]
    # test mode ignores load_from (the checkpoint argument replaces it)
    with pytest.raises(MissingPretrainedError) as e:
        resolve_pretrained_paths(cfg, check_load_from=False)
    assert len(str(e.value).splitlines()) == 1
