# Copyright (c) mmext contributors. All rights reserved.
import pytest
import torch
from mmengine.optim import DefaultOptimWrapperConstructor
from mmpretrain.engine.optimizers import \
    LearningRateDecayOptimWrapperConstructor

import mmext.engine  # noqa: F401
import mmext.models  # noqa: F401
from mmext.engine.optimizers import TrainableOptimWrapperConstructor
from mmext.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
from mmext.utils import register_all_modules

VIT = dict(
    type='VisionTransformer',
    img_size=32,
    patch_size=8,
    arch=dict(
        embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64))

register_all_modules()  # ImageClassifier builds its backbone in scope


def _classifier(frozen_stages=1, backbone=VIT, in_channels=32):
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='PartialFreeze',
                backbone=backbone,
                frozen_stages=frozen_stages),
            head=dict(
                type='LinearClsHead', num_classes=3, in_channels=in_channels)))


def _lr_by_name(model, optimizer):
    names = {id(p): n for n, p in model.named_parameters()}
    return {
        names[id(p)]: (g['lr'], g['weight_decay'])
        for g in optimizer.param_groups for p in g['params']
    }


def test_default_constructor_keeps_frozen_ours_drops_them():
    model = _classifier()
    cfg = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9))
    default = DefaultOptimWrapperConstructor(cfg)(model)
    n_all = len(list(model.parameters()))
    assert sum(len(g['params'])
               for g in default.optimizer.param_groups) == n_all
    ours = TrainableOptimWrapperConstructor(cfg)(model)
    n_trainable = sum(p.requires_grad for p in model.parameters())
    assert n_trainable < n_all
    assert sum(len(g['params'])
               for g in ours.optimizer.param_groups) == n_trainable
    assert len(ours.optimizer.param_groups) == 1  # merged


def test_built_from_registry_by_name():
    model = _classifier()
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='TrainableOptimWrapperConstructor',
            optim_wrapper_cfg=dict(optimizer=dict(type='SGD', lr=0.1))))
    assert type(constructor) is TrainableOptimWrapperConstructor
    wrapper = constructor(model)
    held = {id(p) for g in wrapper.optimizer.param_groups for p in g['params']}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert held == trainable and trainable != {
        id(p)
        for p in model.parameters()
    }  # frozen ones left out
    assert {g['lr'] for g in wrapper.optimizer.param_groups} == {0.1}


def test_layer_decay_matches_mmpretrain():
    """Same lr and weight decay per trainable tensor as mmpretrain's
    LearningRateDecayOptimWrapperConstructor."""
    model = _classifier(frozen_stages=1)
    cfg = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
    paramwise = dict(
        layer_decay_rate=0.65,
        norm_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={'.cls_token': dict(decay_mult=0.0)})
    ref = LearningRateDecayOptimWrapperConstructor(cfg, paramwise)(model)
    ours = TrainableOptimWrapperConstructor(cfg, paramwise)(model)
    expected = _lr_by_name(model, ref.optimizer)
    got = _lr_by_name(model, ours.optimizer)
    assert set(got) == set(expected)
    for name, (lr, wd) in expected.items():
        assert got[name][0] == pytest.approx(lr, rel=1e-12), name
        assert got[name][1] == pytest.approx(wd), name
    # decay actually varies with depth: block 1 < block 3 < head
    assert got['backbone.layers.1.attn.qkv.weight'][0] < \
        got['backbone.layers.3.attn.qkv.weight'][0] < \
        got['head.fc.weight'][0] == 1e-3
    assert len(ours.optimizer.param_groups) < len(ref.optimizer.param_groups)


def test_layer_decay_combines_with_lr_mult():
    model = _classifier(frozen_stages=-1)
    cfg = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9))
    ours = TrainableOptimWrapperConstructor(
        cfg,
        dict(layer_decay_rate=0.5, custom_keys={'head': dict(lr_mult=10.0)}))(
            model)
    got = _lr_by_name(model, ours.optimizer)
    # depth of layers.2 = 3 of 6 -> 0.5 ** (6 - 3 - 1)
    assert got['backbone.layers.2.ffn.layers.1.weight'][0] == \
        pytest.approx(0.1 * 0.25)
    assert got['head.fc.weight'][0] == pytest.approx(1.0)


def test_layer_decay_without_get_layer_depth_is_an_error():
    tiny_vit = dict(
        type='TinyViT',
        img_size=(64, 64),
        window_size=[4, 4, 4, 4],
        arch=dict(
            channels=[16, 32, 32, 48],
            num_heads=[1, 2, 2, 3],
            depths=[1, 1, 2, 1]))
    model = _classifier(0, tiny_vit, 48)
    with pytest.raises(ValueError, match='TinyViT lacks'):
        TrainableOptimWrapperConstructor(
            dict(optimizer=dict(type='SGD', lr=0.1)),
            dict(layer_decay_rate=0.8))(
                model)


def test_everything_frozen_is_an_error():
    model = _classifier('all')
    model.head.requires_grad_(False)
    with pytest.raises(ValueError, match='every parameter'):
        TrainableOptimWrapperConstructor(
            dict(optimizer=dict(type='SGD', lr=0.1)))(
                model)
