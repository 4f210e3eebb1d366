# Copyright (c) mmext contributors. All rights reserved.
"""mmext.visualization.trar_routing and its CLI
tools/analysis_tools/vis_trar_routing.py: JSON routing weights, effective
span against brute force, PNG picture, errors."""
import json

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from mmext.apis.inference import init_classifier
from mmext.testing import make_image_folder
from mmext.visualization import collect_trar_routing, save_trar_routing
from tests.conftest import ROOT, run_tool

TOOL = ROOT / 'tools/analysis_tools/vis_trar_routing.py'


@pytest.fixture
def setup(tmp_path):
    """A tiny TRAR-ViT config (3 layers, layer 2 unrouted, grid 7) + ckpt."""
    from mmext.registry import MODELS
    from mmext.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(
        str(ROOT / 'configs/trar_vit' /
            'trar-vit-base-p16_8xb64-in21k-pre_in1k.py'))
    cfg.model.backbone.update(
        arch=dict(
            embed_dims=32, num_layers=3, num_heads=2, feedforward_channels=48),
        patch_size=32,
        routed_layers=[0, 1],
        init_cfg=None)
    cfg.model.head.in_channels = 32
    cfg.dump(str(tmp_path / 'tiny_trar.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'trar.pth')
    make_image_folder(
        tmp_path / 'img', num_classes=1, per_class=1, size=40, splits=('x', ))
    image = tmp_path / 'img/x/class_0/0_0.png'
    return tmp_path, image


def reference_span(grid, orders, alpha, query):
    h, w = grid
    span = np.zeros(grid)
    for a, k in zip(alpha, orders):
        for y in range(h):
            for x in range(w):
                if k == 0 or max(abs(y - query[0]), abs(x - query[1])) <= k:
                    span[y, x] += a
    return span


def test_json_and_png(setup):
    tmp, image = setup
    proc = run_tool([
        TOOL, image, tmp / 'tiny_trar.py', tmp / 'trar.pth', '--out',
        tmp / 'out', '--query', '1', '5'
    ],
                    cwd=tmp)
    rec = json.loads((tmp / 'out/0_0_routing.json').read_text())
    assert rec['grid'] == [7, 7] and rec['query'] == [1, 5]
    assert [lay['orders']
            for lay in rec['layers']] == [[0, 1, 2, 3]] * 2 + [[0]]
    for lay in rec['layers']:
        assert sum(lay['alpha']) == pytest.approx(1, abs=1e-5)
        np.testing.assert_allclose(
            lay['effective_span'],
            reference_span((7, 7), lay['orders'], lay['alpha'], (1, 5)),
            atol=1e-4)
    assert rec['layers'][2]['alpha'] == [1.0]  # the plain ViT layer
    assert len(rec['predictions']) == 5
    assert rec['predictions'][0]['name'] is not None  # ImageNet classes
    png = Image.open(tmp / 'out/0_0_spans.png')
    assert png.size[0] > 300 and png.size[1] > 300
    assert np.asarray(png.convert('L')).std() > 10  # not blank
    assert proc.stdout.splitlines() == [
        f'routing weights -> {tmp}/out/0_0_routing.json',
        f'span picture -> {tmp}/out/0_0_spans.png'
    ]


def test_binarized_routing_is_one_hot(setup):
    tmp, image = setup
    inferencer = init_classifier(
        str(tmp / 'tiny_trar.py'),
        str(tmp / 'trar.pth'),
        cfg_options={'model.backbone.binarize': True})
    save_trar_routing(inferencer, str(image), str(tmp / 'bin'))
    rec = json.loads((tmp / 'bin/0_0_routing.json').read_text())
    for lay in rec['layers'][:2]:
        assert sorted(lay['alpha']) == [0.0, 0.0, 0.0, 1.0]


def test_errors(setup):
    tmp, image = setup
    inferencer = init_classifier(
        str(tmp / 'tiny_trar.py'), str(tmp / 'trar.pth'))
    with pytest.raises(ValueError, match='outside the 7x7 patch grid'):
        save_trar_routing(inferencer, str(image), str(tmp / 'o'), (7, 0))
    assert not (tmp / 'o').exists()  # nothing written
    resnet = ROOT / 'configs/tiny/resnet18_1xb8-scratch_tiny-64px.py'
    from mmext.registry import MODELS
    model = MODELS.build(Config.fromfile(str(resnet)).model)
    torch.save({'state_dict': model.state_dict()}, tmp / 'r.pth')
    with pytest.raises(TypeError, match='is ResNet, not TRARViT'):
        collect_trar_routing(
            init_classifier(str(resnet), str(tmp / 'r.pth')), str(image))
