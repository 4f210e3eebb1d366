# Copyright (c) mmext contributors. All rights reserved.
"""Every configs/trar_vit config builds and trains 2 iterations (+ a
validation) on tiny data written in the real on-disk formats, with the arch
shrunk by config overrides; --amp (bf16 on CPU) works; the pretrained path
loads a converted checkpoint."""
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image

from mmext.apis import prepare_config
from mmext.testing import shrink_runtime
from mmext.testing.flowers import make_flowers17
from tests.conftest import ROOT

CONFIGS = sorted((ROOT / 'configs/trar_vit').glob('*.py'))
TINY = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=48)


def write_cifar(root, name):
    """Tiny ``cifar-10-batches-py`` / ``cifar-100-python`` pickles."""
    rng = np.random.default_rng(0)
    if name == 'cifar10':
        folder, label_key, classes = 'cifar-10-batches-py', 'labels', 10
        files = [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']
        meta = ('batches.meta', 'label_names')
    else:
        folder, label_key, classes = 'cifar-100-python', 'fine_labels', 100
        files, meta = ['train', 'test'], ('meta', 'fine_label_names')
    d = Path(root) / folder
    d.mkdir(parents=True)
    for f in files:
        labels = rng.integers(0, classes, 4).tolist()
        entry = {
            'data': rng.integers(0, 256, (4, 3072), dtype=np.uint8),
            label_key: labels
        }
        if name == 'cifar100':
            entry['coarse_labels'] = [x // 5 for x in labels]
        (d / f).write_bytes(pickle.dumps(entry))
    (d / meta[0]).write_bytes(
        pickle.dumps({meta[1]: [f'class{i}' for i in range(classes)]}))


def write_imagenet(root):
    """``train/<wnid>/*.JPEG``, ``val/*.JPEG`` and ``meta/{train,val}.txt``."""
    root = Path(root)
    rng = np.random.default_rng(0)
    (root / 'meta').mkdir(parents=True)
    train, val = [], []
    for label, wnid in enumerate(['n01440764', 'n01443537']):
        (root / 'train' / wnid).mkdir(parents=True)
        for i in range(3):
            name = f'{wnid}/{wnid}_{i}.JPEG'
            Image.fromarray(rng.integers(0, 256, (40, 48, 3),
                                         dtype=np.uint8)).save(
                                             root / 'train' / name, 'JPEG')
            train.append(f'{name} {label}')
    (root / 'val').mkdir()
    for i in range(4):
        name = f'ILSVRC2012_val_{i + 1:08d}.JPEG'
        Image.fromarray(rng.integers(0, 256, (40, 48, 3),
                                     dtype=np.uint8)).save(
                                         root / 'val' / name, 'JPEG')
        val.append(f'{name} {i % 2}')
    (root / 'meta/train.txt').write_text('\n'.join(train) + '\n')
    (root / 'meta/val.txt').write_text('\n'.join(val) + '\n')


@pytest.fixture
def tiny_data(tmp_path, monkeypatch):
    """The data sets under tmp_path/data; cwd = tmp_path."""
    from mmpretrain.datasets import CIFAR10, CIFAR100
    write_cifar(tmp_path / 'data/cifar10', 'cifar10')
    write_cifar(tmp_path / 'data/cifar100', 'cifar100')
    write_imagenet(tmp_path / 'data/imagenet')
    make_flowers17(tmp_path / 'data/flowers17', per_class=4, size=48)
    # generated pickles cannot match the real archives' md5 sums
    for cls in (CIFAR10, CIFAR100):
        for attr in ('train_list', 'test_list'):
            monkeypatch.setattr(cls, attr,
                                [[f, None] for f, _ in getattr(cls, attr)])
        monkeypatch.setattr(cls, 'meta', dict(cls.meta, md5=None))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def backbone_cfg(cfg):
    b = cfg.model.backbone
    return b.backbone if b.type == 'PartialFreeze' else b


def shrink(cfg, work_dir):
    """Tiny arch (grid 7 at 224, 12 at 384), batch 2, 2 iterations."""
    b = backbone_cfg(cfg)
    b.arch = dict(TINY)
    b.patch_size = 32
    b.init_cfg = None
    if cfg.model.backbone.type == 'PartialFreeze':
        cfg.model.backbone.frozen_stages = 1
    cfg.model.head.in_channels = TINY['embed_dims']
    shrink_runtime(cfg, work_dir)
    cfg.train_cfg.max_iters = 2
    cfg.train_cfg.val_interval = 2
    cfg.default_hooks.checkpoint.interval = 2
    return cfg


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.stem)
def test_config_trains_two_iterations(path, tiny_data):
    cfg = shrink(Config.fromfile(str(path)), tiny_data / 'work')
    cfg.launcher = 'none'
    cfg = prepare_config(cfg)
    runner = Runner.from_cfg(cfg)
    before = {
        k: v.clone()
        for k, v in runner.model.state_dict().items() if 'layers.1.' in k
    }
    runner.train()
    assert runner.iter == 2
    # accumulation (8) over 2 iterations still steps once at the end
    after = runner.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    is_trar = backbone_cfg(cfg).type == 'TRARViT'
    assert any('router' in k for k in after) == is_trar
    metrics = runner.message_hub.get_scalar('val/accuracy/top1')
    assert metrics is not None
    if cfg.model.backbone.type == 'PartialFreeze':
        frozen = runner.model.backbone.layers[0]
        assert not any(p.requires_grad for p in frozen.parameters())
        opt_params = {
            id(p)
            for g in runner.optim_wrapper.optimizer.param_groups
            for p in g['params']
        }
        assert not any(id(p) in opt_params for p in frozen.parameters())


@pytest.mark.skipif(torch.cuda.is_available(), reason='tests the CPU path')
def test_amp_bf16_on_cpu(tiny_data):
    """What ``tools/train.py --amp`` sets. mmengine's AmpOptimWrapper asserts
    a GPU; mmext's (same name, mmext scope) autocasts to bf16 on CPU with no
    loss scaling. Nothing is patched: the run uses the real CPU path."""
    path = (
        ROOT / 'configs/trar_vit' /
        'trar-vit-base-p16_8xb64-in21k-pre_cifar10.py')
    cfg = shrink(Config.fromfile(str(path)), tiny_data / 'amp')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'
    cfg.launcher = 'none'
    runner = Runner.from_cfg(prepare_config(cfg))
    seen = []
    runner.model.backbone.layers[1].attn.register_forward_hook(
        lambda m, i, o: seen.append(o.dtype))
    runner.train()
    from mmext.engine.optimizers.amp_optim_wrapper import AmpOptimWrapper
    assert type(runner.optim_wrapper) is AmpOptimWrapper
    assert runner.optim_wrapper.loss_scaler is None  # bf16: none needed
    assert torch.bfloat16 in seen  # the attention ran under autocast
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert np.isfinite(loss)


def test_hard_routing_config_anneals_tau(tiny_data):
    path = (
        ROOT / 'configs/trar_vit' /
        'trar-vit-base-p16-hard_8xb64-in21k-pre_cifar10.py')
    cfg = shrink(Config.fromfile(str(path)), tiny_data / 'hard')
    cfg.custom_hooks[0].iters_per_epoch = 1  # 2 "epochs" of 2
    cfg.launcher = 'none'
    runner = Runner.from_cfg(prepare_config(cfg))
    runner.train()
    taus = runner.message_hub.get_scalar('train/tau').data[0]
    np.testing.assert_allclose(taus, [10.0, 0.1])  # slow: tau_max -> tau_min
    assert all(r.tau == 0.1 for r in runner.model.backbone.routers)


def test_pretrained_checkpoint_from_config_loads(tiny_data):
    """The configs' init_cfg loads a converted Google checkpoint."""
    from mmext.models.utils.checkpoint_convert import convert_vit_npz_file
    from mmext.registry import MODELS
    from mmext.testing import make_google_vit_npz
    from mmext.utils import safe_torch_load
    dims, heads, mlp, layers, patch, grid = 32, 4, 48, 2, 8, 4
    make_google_vit_npz(tiny_data / 'ViT-B_16.npz', dims, heads, mlp, layers,
                        patch, grid)
    convert_vit_npz_file('ViT-B_16.npz')  # -> pretrain_pth/ViT-B_16.pth
    cfg = Config.fromfile(
        str(ROOT / 'configs/trar_vit' /
            'trar-vit-base-p16_8xb64-in21k-pre_cifar10.py'))
    b = cfg.model.backbone
    b.arch = dict(
        embed_dims=dims,
        num_layers=layers,
        num_heads=heads,
        feedforward_channels=mlp)
    b.img_size, b.patch_size = grid * patch, patch
    cfg.model.head.in_channels = dims
    cfg.launcher = 'none'
    cfg = prepare_config(cfg)
    model = MODELS.build(cfg.model)
    model.init_weights()
    sd = safe_torch_load('pretrain_pth/ViT-B_16.pth')['state_dict']
    for k, v in sd.items():
        assert torch.equal(model.state_dict()[k], v), k
    # the zero-initialised head of the reference fine-tuning
    assert model.head.layers.head.weight.abs().sum() == 0
