# Copyright (c) mmext contributors. All rights reserved.
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmext
from mmext.apis import ConfigError, check_config_types
from mmext.registry import DATASETS, HOOKS, METRICS, MODELS
from ..conftest import ROOT


def test_mmpretrain_types_resolve_unprefixed_in_mmext_scope():
    from mmext.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmext'):
        model = MODELS.build(
            dict(
                type='ImageClassifier',
                backbone=dict(type='ResNet', depth=18),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(
                    type='LinearClsHead', num_classes=2, in_channels=512)))
    assert type(model.backbone).__module__.startswith('mmpretrain')
    assert METRICS.get('Accuracy') is not None
    assert DATASETS.get('CustomDataset') is not None
    assert HOOKS.get('RNGStateHook').__module__.startswith('mmext')
    assert MODELS.scope == 'mmext' and MODELS.parent.scope == 'mmpretrain'


def test_every_shipped_config_has_known_types():
    """Every config in configs/ names only registered types."""
    bad = []
    for path in sorted((ROOT / 'configs').rglob('*.py')):
        # configs/hpo holds Optuna search spaces, not configs
        if '_base_' in path.parts or 'hpo' in path.parts:
            continue
        try:
            check_config_types(Config.fromfile(str(path)))
        except ConfigError as e:
            bad.append(f'{path.relative_to(ROOT)}: {e}')
    assert not bad, '\n'.join(bad)


def test_unknown_type_message():
    cfg = Config(
        dict(
            model=dict(
                type='ImageClassifier',
                backbone=dict(type='VisionTransformr')),
            val_evaluator=dict(type='Acuracy')))
    with pytest.raises(ConfigError) as e:
        check_config_types(cfg)
    lines = str(e.value).splitlines()
    assert any("model.backbone: type 'VisionTransformr'" in x
               and "did you mean 'VisionTransformer'" in x for x in lines)
    assert any("'metric' registry" in x and "'Accuracy'" in x for x in lines)


def test_version_check_message(monkeypatch):
    import mmpretrain
    monkeypatch.setattr(mmpretrain, '__version__', '0.25.0')
    with pytest.raises(AssertionError) as e:
        mmext._check_versions()
    assert 'mmpretrain==0.25.0' in str(e.value)
    assert 'pip install "mmpretrain==1.2.0"' in str(e.value)
