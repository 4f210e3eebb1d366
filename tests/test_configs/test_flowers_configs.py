# Copyright (c) mmext contributors. All rights reserved.
"""Every config in configs/flowers/ builds and trains 2 iterations on tiny
generated Flowers data, with its freezing rule intact.

Overrides (the same for every config): data roots to generated data, 32 px
images (64 for TinyViT, whose input must equal img_size), batch 2, no
workers, no validation, Pretrained init replaced by none (no weights here),
ViT-B shrunk to 32 channels but kept at 12 blocks so 'first 8 of 12' means
the same.
"""
from pathlib import Path

import pytest
import scipy.io
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmext.apis import prepare_config
from mmext.testing import drop_pretrained, shrink_runtime, walk_config
from mmext.testing.flowers import make_flowers17, make_flowers102
from tests.conftest import ROOT

CONFIGS = sorted(
    p for p in (ROOT / 'configs/flowers').glob('*.py')
    if '_demo-' not in p.name)
TINY_VIT = dict(
    embed_dims=32, num_layers=12, num_heads=2, feedforward_channels=64)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('flowers')
    make_flowers17(root / 'flowers17', per_class=4, size=72)
    make_flowers102(root / 'flowers102', per_class=3, size=72)
    trnid = scipy.io.loadmat(root / 'flowers102/setid.mat')['trnid'].ravel()
    exclude = root / 'flowers102/exclude_flowers17.txt'
    exclude.write_text(f'# planted for the test\njpg/image_{int(trnid[0]):05d}'
                       '.jpg\n')
    return root


def _shrink(cfg, data_root, work_dir):
    backbone = cfg.model.backbone.backbone
    size = 64 if backbone.type == 'TinyViT' else 32

    def patch(d):
        root = d.get('data_root')
        if isinstance(root, str) and root.startswith('data/'):
            d['data_root'] = str(data_root / root[len('data/'):])
        if isinstance(d.get('exclude_file'), str):
            d['exclude_file'] = str(data_root /
                                    d['exclude_file'][len('data/'):])
        if d.get('type') == 'RandomResizedCrop':
            d['scale'] = size
        if d.get('type') in ('ResizeEdge', 'CenterCrop'):
            d['scale' if 'scale' in d else 'crop_size'] = size

    walk_config(cfg._cfg_dict, patch)
    drop_pretrained(cfg)
    if backbone.type == 'VisionTransformer':
        backbone.update(arch=TINY_VIT, img_size=size, patch_size=8)
        cfg.model.head.in_channels = TINY_VIT['embed_dims']
    if backbone.type == 'TinyViT':
        backbone.img_size = (size, size)
    shrink_runtime(cfg, work_dir)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=-1, save_last=False)
    return cfg


# The frozen backbone tensors each shipped config must give, written out
# (not derived from the freezing rule under test). Configs not listed train
# the whole backbone (frozen_stages=-1).
VIT_BLOCK = ('ln1.weight', 'ln1.bias', 'attn.qkv.weight', 'attn.qkv.bias',
             'attn.proj.weight', 'attn.proj.bias', 'ln2.weight', 'ln2.bias',
             'ffn.layers.0.0.weight', 'ffn.layers.0.0.bias',
             'ffn.layers.1.weight', 'ffn.layers.1.bias')
VIT_STEM = ('cls_token', 'pos_embed', 'patch_embed.projection.weight',
            'patch_embed.projection.bias')
VIT_ALL = set(VIT_STEM) | {
    f'layers.{i}.{p}'
    for i in range(12) for p in VIT_BLOCK
} | {'ln1.weight', 'ln1.bias'}
EXPECTED_FROZEN = {
    'vit-base-p16_1xb32-linear-probe_flowers17': VIT_ALL,
    # stem + blocks 0-7: 4 + 8 x 12 = 100 tensors; blocks 8-11 and the
    # final norm stay trainable
    'vit-base-p16_1xb32-partial-8of12_flowers17':
    set(VIT_STEM) | {f'layers.{i}.{p}'
                     for i in range(8) for p in VIT_BLOCK},
}


def test_configs_found():
    assert len(CONFIGS) >= 14  # the glob must not silently find nothing


@pytest.mark.parametrize('path', CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_trains_two_iterations(path, data, tmp_path):
    cfg = _shrink(Config.fromfile(path), data, tmp_path / 'work')
    assert cfg.default_scope == 'mmext'
    stage1 = None
    if cfg.get('load_from'):
        # a stand-in stage-1 checkpoint: the 102-class model's weights
        s1 = _shrink(
            Config.fromfile(ROOT / 'configs/flowers/'
                            'resnet18_1xb32-ft_flowers102-noleak.py'), data,
            tmp_path / 's1')
        s1_model = Runner.from_cfg(prepare_config(s1)).model
        stage1 = {k: v.clone() for k, v in s1_model.state_dict().items()}
        torch.save({'state_dict': stage1, 'meta': {}}, tmp_path / 's1.pth')
        cfg.load_from = str(tmp_path / 's1.pth')
        cfg.optim_wrapper.optimizer.lr = 0.0  # weights must stay stage 1's
    runner = Runner.from_cfg(prepare_config(cfg))
    model = runner.model
    frozen = {
        n
        for n, p in model.backbone.named_parameters() if not p.requires_grad
    }
    if path.stem not in EXPECTED_FROZEN:
        assert cfg.model.backbone.frozen_stages == -1, (
            f'{path.stem} freezes part of its backbone: add its frozen '
            'tensors to EXPECTED_FROZEN')
    assert frozen == EXPECTED_FROZEN.get(path.stem, set())

    runner.train()
    assert runner.iter == 2
    in_optim = {
        id(p)
        for g in runner.optim_wrapper.optimizer.param_groups
        for p in g['params']
    }
    assert in_optim == {id(p) for p in model.parameters() if p.requires_grad}
    if stage1 is not None:
        state = model.state_dict()
        for k, v in stage1.items():
            if k.endswith('weight') and k.startswith('backbone.'):
                assert torch.equal(state[k], v), k
        assert state['head.fc.weight'].shape[0] == 17
        log = next(Path(runner.log_dir).glob('*.log')).read_text()
        assert 'LoadFromFilterHook: dropped 2 keys whose shape differs from ' \
            'the model (head.fc.weight, head.fc.bias)' in log
        assert 'size mismatch' not in log
