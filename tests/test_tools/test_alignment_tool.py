# Copyright (c) mmext contributors. All rights reserved.
"""tools/analysis_tools/alignment.py on two classifiers (one checkpoint
twice: every layer must match itself exactly; the defaults, no --pooling),
on two checkpoints of the tiny ViLBERT config (no --cfg-options: the
measurement mode turns the ITM swaps and masking off) and the library entry
on the tiny ViLBERT (text vs vision stream, co-attention outputs
included)."""
import csv
import json

import pytest
import torch

from ..conftest import ROOT, run_tool

TOOL = ROOT / 'tools' / 'analysis_tools' / 'alignment.py'
TINY = ROOT / 'configs' / 'tiny' / 'resnet18_1xb8-scratch_tiny-64px.py'


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmext.registry import MODELS
    from mmext.testing import make_image_folder
    from mmext.utils import register_all_modules
    ws = tmp_path_factory.mktemp('align_ws')
    make_image_folder(ws / 'data' / 'tiny', per_class=8, size=32)
    register_all_modules(init_default_scope=False)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmext'):
        model = MODELS.build(Config.fromfile(TINY).model)
    torch.save(dict(state_dict=model.state_dict()), ws / 'ckpt.pth')
    (ws / 'run2').mkdir()
    torch.save(dict(state_dict=model.state_dict()), ws / 'run2' / 'ckpt.pth')
    return ws


def _png_width(path):
    from PIL import Image
    with Image.open(path) as img:
        return img.size[0]


def test_two_models_same_checkpoint(workspace):
    ws = workspace
    run_tool([
        TOOL, TINY, 'ckpt.pth', '--config2', TINY, '--checkpoint2',
        'run2/ckpt.pth', '--k', '5', '--metrics', 'mutual_knn', 'linear_cka',
        'svcca', '--svcca-keep', '4', '--out', 'out', '--no-progress'
    ],
             cwd=ws)
    res = json.loads((ws / 'out' / 'alignment.json').read_text())
    assert res['num_samples'] == 24
    assert res['layers_a'] == [f'backbone.layer{i}' for i in range(1, 5)]
    # default pooling on ResNet stages: the mean over H x W
    assert set(res['pooling_a'].values()) == {'spatial mean'}
    # one config: the sides are named by checkpoint (parent dir + file)
    assert res['sides'] == [f'a: {ws.name}/ckpt.pth', 'b: run2/ckpt.pth']
    assert len(res['records']) == 16
    for r in res['records']:
        if r['layer_a'] == r['layer_b']:  # the same samples, in order
            assert r['mutual_knn'] == 1.0
            assert r['linear_cka'] == pytest.approx(1, abs=1e-5)
            assert r['svcca'] == pytest.approx(1, abs=1e-5)
        else:
            assert r['linear_cka'] < 1 - 1e-4
    with open(ws / 'out' / 'alignment.csv') as f:
        assert len(list(csv.DictReader(f))) == 16
    for name in ('heatmap_linear_cka.png', 'per_layer.png'):
        assert _png_width(ws / 'out' / name) >= 800
    bad = run_tool([
        TOOL, TINY, 'ckpt.pth', '--layers', 'backbone.layer7', '--out', 'bad'
    ],
                   cwd=ws,
                   check=False)
    assert bad.returncode != 0
    assert "'backbone.layer7' is not a submodule" in bad.stderr
    assert not (ws / 'bad').exists()


def test_vilbert_two_checkpoints_of_one_config(tmp_path):
    """Two checkpoints of the tiny ViLBERT pretraining config, defaults
    only: the ITM caption swaps and MLM masking of its val loader are off
    in measurement mode, so both passes see the same samples."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmext.registry import MODELS
    from mmext.testing.vilbert import make_vilbert_tiny_data
    from mmext.utils import register_all_modules
    make_vilbert_tiny_data(tmp_path / 'data' / 'tiny_cc')
    cfg_path = ROOT / 'configs/vilbert/vilbert_tiny_1xb4-pretrain_tiny-cc.py'
    cfg = Config.fromfile(cfg_path)
    cfg.model.text.folder = str(tmp_path / 'data/tiny_cc/bert')
    register_all_modules(init_default_scope=False)
    for seed, name in ((0, 'a'), (1, 'b')):
        torch.manual_seed(seed)
        with DefaultScope.overwrite_default_scope('mmext'):
            model = MODELS.build(cfg.model)
        (tmp_path / name).mkdir()
        torch.save(
            dict(state_dict=model.state_dict()), tmp_path / name / 'ep1.pth')
    out = run_tool([
        TOOL, cfg_path, 'a/ep1.pth', '--config2', cfg_path, '--checkpoint2',
        'b/ep1.pth', '--split', 'val', '--k', '3', '--metrics', 'linear_cka',
        '--out', 'out', '--no-progress'
    ],
                   cwd=tmp_path)
    assert 'vilbert_collate.itm_prob=0' in out.stdout
    res = json.loads((tmp_path / 'out' / 'alignment.json').read_text())
    assert res['num_samples'] == 16  # every pair kept: no swaps
    assert res['input_differences'] == []
    assert 'TokenizeCaption.mlm_prob=0' in res['measurement_mode']
    # both streams of each model, token 0 ([CLS] / global image token)
    assert res['layers_a'][:2] == ['text.0', 'text.1']
    assert 'vision.0' in res['layers_a'] and res['layers_a'] == res['layers_b']
    assert set(res['pooling_a'].values()) == {'cls'}
    assert res['sides'] == ['a: a/ep1.pth', 'b: b/ep1.pth']


def test_vilbert_text_vs_vision(tmp_path, monkeypatch):
    from mmext.analysis import run_alignment
    from mmext.testing.vilbert import make_vilbert_tiny_data
    make_vilbert_tiny_data(tmp_path / 'data' / 'tiny_cc')
    monkeypatch.chdir(tmp_path)
    res = run_alignment(
        str(ROOT / 'configs/vilbert/vilbert_tiny_1xb4-pretrain_tiny-cc.py'),
        None,
        'out',
        split='val',
        metrics=['linear_cka', 'mutual_knn'],
        pairs='matched',
        progress=False,
        k=3)
    assert res['layers_a'] == ['text.0', 'text.1', 'coattn.0.text']
    assert res['layers_b'] == ['vision.0', 'vision.1', 'coattn.0.vision']
    assert res['num_samples'] == 16
    assert [r['layer_b'] for r in res['records']] == res['layers_b']
    assert (tmp_path / 'out' / 'heatmap_mutual_knn.png').is_file()
    assert res['sides'][0].endswith('text')
    assert res['sides'][1].endswith('vision')
