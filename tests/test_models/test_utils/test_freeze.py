# Copyright (c) mmext contributors. All rights reserved.
"""PartialFreeze + TrainableOptimWrapperConstructor on every backbone family:
frozen tensors and BN statistics bit-identical after real optimizer steps,
trainable ones changed, frozen tensors out of the optimizer, frozen norms in
eval mode after ``train()``."""
import copy

import pytest
import torch
from mmpretrain.models import VisionTransformer
from torch import nn

import mmext.engine  # noqa: F401
import mmext.models  # noqa: F401
from mmext.engine.optimizers import TrainableOptimWrapperConstructor
from mmext.models.utils import freeze_module, is_kept_in_eval
from mmext.registry import MODELS

TINY_VIT_ARCH = dict(
    embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)


class SubclassedViT(VisionTransformer):
    """Stands in for TRARViT: a ViT subclass with one extra routed param."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for layer in self.layers:
            layer.route = nn.Linear(self.embed_dims, 2)

    def forward(self, x):
        out = super().forward(x)
        # make the extra params take part in the loss
        return tuple(o + sum(
            layer.route(o).sum() * 0 + layer.route.bias.sum()
            for layer in self.layers) for o in out)


if 'SubclassedViT' not in MODELS.module_dict:
    MODELS.register_module(module=SubclassedViT)

# (name, backbone cfg, frozen_stages, img size, prefixes expected frozen)
CASES = [
    ('vit',
     dict(
         type='VisionTransformer',
         arch=TINY_VIT_ARCH,
         img_size=32,
         patch_size=8,
         drop_path_rate=0.1), 2, 32,
     ['cls_token', 'pos_embed', 'patch_embed.', 'layers.0.', 'layers.1.']),
    ('vit_subclass',
     dict(type='SubclassedViT', arch=TINY_VIT_ARCH, img_size=32,
          patch_size=8), 3, 32, [
              'cls_token', 'pos_embed', 'patch_embed.', 'layers.0.',
              'layers.1.', 'layers.2.'
          ]),
    ('resnet18', dict(type='ResNet', depth=18, base_channels=16), 2, 32,
     ['conv1.', 'bn1.', 'layer1.', 'layer2.']),
    ('seresnet50',
     dict(type='SEResNet', depth=50, base_channels=8,
          stem_channels=8), 1, 32, ['conv1.', 'bn1.', 'layer1.']),
    ('tinyvit',
     dict(
         type='TinyViT',
         img_size=(64, 64),
         window_size=[4, 4, 4, 4],
         arch=dict(
             channels=[16, 32, 32, 48],
             num_heads=[1, 2, 2, 3],
             depths=[1, 1, 2, 1])), 1, 64, ['patch_embed.', 'stages.0.']),
]
# mmext's TRAR-ViT: a VisionTransformer subclass, so the ViT rule applies
CASES.append(
    ('trar_vit',
     dict(type='TRARViT', arch=TINY_VIT_ARCH, img_size=32, patch_size=8), 2,
     32, ['cls_token', 'pos_embed', 'patch_embed.', 'layers.0.', 'layers.1.']))

OPTIMIZERS = [
    dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-2),
    dict(type='AdamW', lr=1e-2, weight_decay=0.05),
]


class Net(nn.Module):
    """backbone + pooled linear head, like ImageClassifier."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.head = nn.LazyLinear(3)

    def forward(self, x):
        feat = self.backbone(x)[-1]
        if feat.dim() == 4:
            feat = feat.mean((2, 3))
        return self.head(feat)


def _build(cfg, frozen_stages, size, **kwargs):
    torch.manual_seed(0)
    backbone = MODELS.build(
        dict(
            type='PartialFreeze',
            backbone=copy.deepcopy(cfg),
            frozen_stages=frozen_stages,
            **kwargs))
    net = Net(backbone)
    net(torch.rand(2, 3, size, size))  # materialise the lazy head
    return net


def _expected_frozen(net, prefixes):
    return {
        n
        for n, _ in net.backbone.named_parameters()
        if any(n == p or n.startswith(p) for p in prefixes)
    }


@pytest.mark.parametrize('optimizer', OPTIMIZERS, ids=['sgd', 'adamw'])
@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_frozen_unchanged_trainable_updated(case, optimizer):
    _, cfg, stages, size, prefixes = case
    net = _build(cfg, stages, size)
    frozen = _expected_frozen(net, prefixes)
    assert frozen, 'the case must freeze something'
    got = {
        n
        for n, p in net.backbone.named_parameters() if not p.requires_grad
    }
    assert got == frozen

    wrapper = TrainableOptimWrapperConstructor(dict(optimizer=optimizer))(net)
    in_optim = {
        id(p)
        for g in wrapper.optimizer.param_groups for p in g['params']
    }
    for name, p in net.named_parameters():
        assert (id(p) in in_optim) == p.requires_grad, name

    net.train()
    for name, m in net.backbone.named_modules():
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)):
            params = list(m.parameters())
            is_frozen = bool(params) and not params[0].requires_grad
            assert m.training is not is_frozen, name

    before = {k: v.clone() for k, v in net.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.rand(4, 3, size, size, generator=gen)
        y = torch.randint(0, 3, (4, ), generator=gen)
        loss = nn.functional.cross_entropy(net(x), y)
        wrapper.update_params(loss)
    after = net.state_dict()
    params = dict(net.named_parameters())
    for key, old in before.items():
        name = key[len('backbone.'):]
        if key in params:
            changed = not torch.equal(old, after[key])
            assert changed is params[key].requires_grad, key
        elif key.endswith(('running_mean', 'running_var')):
            module = key.rsplit('.', 1)[0][len('backbone.'):]
            frozen_bn = any(module == p.rstrip('.') or module.startswith(p)
                            for p in prefixes)
            assert torch.equal(old, after[key]) is frozen_bn, name


def test_state_dict_keys_unchanged():
    for _, cfg, stages, size, _ in CASES:
        plain = MODELS.build(copy.deepcopy(cfg))
        frozen = MODELS.build(
            dict(type='PartialFreeze', backbone=cfg, frozen_stages=stages))
        assert type(frozen) is type(plain)
        assert list(frozen.state_dict()) == list(plain.state_dict())
        # a plain checkpoint loads strictly into the frozen model
        frozen.load_state_dict(plain.state_dict(), strict=True)


def test_tinyvit_stage0_freezes_patch_embed():
    cfg = CASES[4][1]
    net = _build(cfg, 0, 64)
    assert not any(p.requires_grad
                   for p in net.backbone.patch_embed.parameters())
    assert all(p.requires_grad for p in net.backbone.stages.parameters())
    # upstream's own frozen_stages=1 leaves patch_embed trainable
    upstream = MODELS.build(dict(cfg, frozen_stages=1))
    upstream.train()
    assert all(p.requires_grad for p in upstream.patch_embed.parameters())


def test_all_stages_is_linear_probe_and_eval():
    net = _build(CASES[2][1], 'all', 32)
    assert not any(p.requires_grad for p in net.backbone.parameters())
    net.train()
    assert not net.backbone.training and net.head.training
    assert all(not m.training for m in net.backbone.modules())
    # the stage count equal to the number of stages means the same
    net4 = _build(CASES[2][1], 4, 32)
    assert not any(p.requires_grad for p in net4.backbone.parameters())


def test_vit_all_blocks_freezes_final_norm():
    net = _build(CASES[0][1], 4, 32)
    assert not net.backbone.ln1.weight.requires_grad


def test_patterns_and_unfreeze():
    cfg = CASES[0][1]
    net = _build(cfg, 'all', 32, unfreeze_patterns=['*ln*'])
    trainable = {
        n
        for n, p in net.backbone.named_parameters() if p.requires_grad
    }
    assert trainable == {
        n
        for n, _ in net.backbone.named_parameters() if 'ln' in n
    }
    net = _build(cfg, -1, 32, frozen_patterns=[r're:layers\.[13]\..*'])
    frozen = {
        n.split('.')[1]
        for n, p in net.backbone.named_parameters() if not p.requires_grad
    }
    assert frozen == {'1', '3'}
    net.train()
    assert not net.backbone.layers[1].training
    assert net.backbone.layers[2].training


def test_deepcopy_keeps_frozen_modules_in_eval():
    net = _build(CASES[2][1], 1, 32)
    ema = copy.deepcopy(net)
    ema.train()
    assert not ema.backbone.layer1.training and ema.backbone.layer2.training
    assert is_kept_in_eval(ema.backbone.layer1)
    # the copy's pin refers to the copy, not to the original
    net.backbone.layer1.training = True
    ema.train()
    assert not ema.backbone.layer1.training


def test_pattern_matching_nothing_is_an_error():
    with pytest.raises(ValueError, match=r"'layer9\.\*' matches no param"):
        MODELS.build(
            dict(
                type='PartialFreeze',
                backbone=CASES[2][1],
                frozen_patterns=['layer9.*']))


def test_bad_frozen_stages():
    with pytest.raises(ValueError, match='has 4 stages'):
        MODELS.build(
            dict(type='PartialFreeze', backbone=CASES[2][1], frozen_stages=5))
    with pytest.raises(ValueError, match='remove frozen_stages'):
        MODELS.build(
            dict(
                type='PartialFreeze',
                backbone=dict(CASES[2][1], frozen_stages=1)))
    with pytest.raises(TypeError, match='lists of patterns'):
        MODELS.build(
            dict(
                type='PartialFreeze',
                backbone=CASES[2][1],
                frozen_patterns='layer1.*'))


def test_unknown_backbone_needs_patterns():
    cfg = dict(type='MobileNetV2', widen_factor=0.25)
    with pytest.raises(TypeError, match='no stage rule for MobileNetV2'):
        MODELS.build(dict(type='PartialFreeze', backbone=cfg, frozen_stages=1))
    m = MODELS.build(
        dict(
            type='PartialFreeze',
            backbone=cfg,
            frozen_patterns=['conv1.*', 'layer1.*']))
    frozen = {n for n, p in m.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(('conv1.', 'layer1.')) for n in frozen)


def test_freeze_module_returns_names_in_order():
    m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Linear(2, 2))
    names = freeze_module(m, frozen_patterns=['1.*', '0.bias'])
    assert names == ['0.bias', '1.weight', '1.bias']
    m.train()
    assert not m[1].training and m[0].training and m[2].training
