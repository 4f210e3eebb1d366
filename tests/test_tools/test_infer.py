# Copyright (c) mmext contributors. All rights reserved.
"""tools/infer.py end to end on a checkpoint trained 1 epoch from
configs/tiny/resnet18_1xb8-scratch_tiny-64px.py, checked against a hand-made
forward."""
import subprocess
import sys

import mmcv
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmext.apis import prepare_config
from mmext.testing import make_image_folder
from tests.conftest import ROOT

CONFIG = ROOT / 'configs/tiny/resnet18_1xb8-scratch_tiny-64px.py'


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('infer')
    make_image_folder(tmp / 'data/tiny', per_class=4, size=32)
    cfg = Config.fromfile(str(CONFIG))
    cfg.data_root = str(tmp / 'data/tiny')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = str(tmp / 'data/tiny')
    cfg.train_cfg.max_epochs = 1
    cfg.work_dir = str(tmp / 'work')
    cfg.launcher = 'none'
    Runner.from_cfg(prepare_config(cfg)).train()
    return tmp, tmp / 'work/epoch_1.pth'


def expected_scores(ckpt, image):
    """Softmax scores computed without the inferencer."""
    from mmext.registry import MODELS
    from mmext.utils import register_all_modules, safe_torch_load
    register_all_modules()
    cfg = Config.fromfile(str(CONFIG))
    cfg.model.data_preprocessor = cfg.data_preprocessor
    model = MODELS.build(cfg.model).eval()
    model.load_state_dict(safe_torch_load(str(ckpt))['state_dict'])
    img = mmcv.imread(str(image))  # BGR, as LoadImageFromFile
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    x = x[:, [2, 1, 0]]  # to_rgb
    pre = cfg.data_preprocessor
    x = (x - torch.tensor(pre.mean).view(1, 3, 1, 1)) / torch.tensor(
        pre.std).view(1, 3, 1, 1)
    with torch.no_grad():
        return model(x, mode='tensor').softmax(-1)[0]


def test_infer_cli_prints_topk(trained):
    tmp, ckpt = trained
    image = tmp / 'data/tiny/val/class_2/2_1.png'
    res = subprocess.run([
        sys.executable,
        str(ROOT / 'tools/infer.py'),
        str(image),
        str(CONFIG),
        str(ckpt), '--topk', '2', '--device', 'cpu'
    ],
                         capture_output=True,
                         text=True,
                         cwd=tmp)
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.strip().splitlines()]
    assert rows[0] == ['rank', 'index', 'score', 'class']
    assert len(rows) == 3
    scores = expected_scores(ckpt, image)
    best = scores.argsort(descending=True)[:2].tolist()
    for rank, (row, idx) in enumerate(zip(rows[1:], best), 1):
        assert int(row[0]) == rank and int(row[1]) == idx
        assert float(row[2]) == pytest.approx(float(scores[idx]), abs=1e-4)
        assert row[3] == f'class_{idx}'


def test_infer_missing_checkpoint_is_one_line(trained):
    tmp, _ = trained
    res = subprocess.run([
        sys.executable,
        str(ROOT / 'tools/infer.py'),
        str(tmp / 'data/tiny/val/class_2/2_1.png'),
        str(CONFIG), 'nope.pth'
    ],
                         capture_output=True,
                         text=True,
                         cwd=tmp)
    assert res.returncode != 0
    assert res.stderr.strip() == 'checkpoint nope.pth not found'


def test_array_dataset_configs_get_rgb_files(tmp_path):
    """CIFAR pipelines hold RGB arrays; a file is read BGR, so the
    inferencer's preprocessor must swap channels."""
    from mmext.apis import init_classifier
    from mmext.registry import MODELS
    from mmext.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(
        str(ROOT / 'configs/trar_vit/vit-base-p16_8xb64-in21k-pre_cifar10.py'))
    cfg.model.backbone.update(
        arch=dict(
            embed_dims=16, num_layers=1, num_heads=2, feedforward_channels=16),
        patch_size=32,
        init_cfg=None)
    cfg.model.head.in_channels = 16
    model = MODELS.build(cfg.model)
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'c.pth')
    assert cfg.data_preprocessor.to_rgb is False
    inferencer = init_classifier(cfg, str(tmp_path / 'c.pth'))
    assert inferencer.model.data_preprocessor.to_rgb is True
    assert inferencer.classes[0] == 'airplane'  # CIFAR10 METAINFO
