# Copyright (c) mmext contributors. All rights reserved.
"""Every shipped config passes the pre-run check's config-only parts (no
false alarms), and a misspelt key in it is caught (the check reaches it)."""
import pytest
from mmengine.config import Config

from mmext.apis import check_config_types
from mmext.apis.prerun import check_monitored_metrics
from mmext.apis.signature_check import check_arguments
from tests.conftest import ROOT

# configs/_base_ are fragments, configs/hpo search spaces
CONFIGS = sorted(
    p for p in (ROOT / 'configs').rglob('*.py')
    if '_base_' not in p.parts and 'hpo' not in p.parts)


def _load(path):
    cfg = Config.fromfile(str(path))
    cfg.setdefault('default_scope', 'mmext')
    return cfg


def test_configs_found():
    assert len(CONFIGS) > 40


@pytest.mark.parametrize(
    'path', CONFIGS, ids=lambda p: str(p.relative_to(ROOT / 'configs')))
def test_shipped_config_passes_and_typos_are_caught(path):
    cfg = _load(path)
    if 'model' not in cfg:
        pytest.skip('defines no model')
    check_config_types(cfg)
    assert check_arguments(cfg) == []
    assert check_monitored_metrics(cfg) == []
    cfg.model.zzz_typo = 1
    expected = ['model.zzz_typo']
    if cfg.get('train_cfg'):
        cfg.train_cfg = dict(cfg.train_cfg, zzz_typo=1)
        expected.append('train_cfg.zzz_typo')
    errors = check_arguments(cfg)
    assert [e.split(':')[0] for e in errors] == expected, errors
