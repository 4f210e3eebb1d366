# Copyright (c) mmext contributors. All rights reserved.
"""PRETRAINED_SOURCES: one literal table, complete for the shipped configs,
and the command it holds is what a missing file's error prints."""
import re
import subprocess
import sys

import pytest
from mmengine.config import Config

from mmext.utils import PRETRAINED_SOURCES, resolve_pretrained_paths
from mmext.utils.paths import MissingPretrainedError
from tests.conftest import ROOT


def test_table_is_complete_without_importing_the_models():
    """Nothing fills the table at import time: mmext.utils alone has every
    row, and registering every module adds none."""
    code = ('import json, sys; from mmext.utils import PRETRAINED_SOURCES as '
            'P; before = dict(P); assert "mmext.models" not in sys.modules; '
            'from mmext.utils import register_all_modules; '
            'register_all_modules(); print(json.dumps([len(before), '
            'dict(P) == before]))')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         check=True).stdout
    assert out.strip() == f'[{len(PRETRAINED_SOURCES)}, true]'


def test_nothing_else_writes_the_table():
    pattern = re.compile(r'PRETRAINED_SOURCES(\.update|\.setdefault|\[.*\]'
                         r'\s*=)')
    offenders = [
        str(p.relative_to(ROOT)) for folder in ('mmext', 'tools', 'configs')
        for p in (ROOT / folder).rglob('*.py') if pattern.search(p.read_text())
    ]
    assert not offenders


def test_every_weight_file_a_config_names_has_a_row():
    names = set()
    for path in (ROOT / 'configs').rglob('*.py'):
        for line in path.read_text().splitlines():
            code = line.split('#')[0]
            names.update(re.findall(r"'pretrain_pth/([\w.-]+\.pth)'", code))
    assert names, 'no config names a pretrain_pth/ file any more?'
    assert names - set(PRETRAINED_SOURCES) == set()


@pytest.mark.parametrize('name',
                         ['ViT-B_16_384.pth', 'resnet101-63fe2227.pth'])
def test_missing_file_prints_its_row(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('MMEXT_PRETRAIN_DIR', raising=False)
    cfg = Config(
        dict(
            model=dict(
                backbone=dict(
                    init_cfg=dict(
                        type='Pretrained',
                        checkpoint=f'pretrain_pth/{name}')))))
    with pytest.raises(MissingPretrainedError) as e:
        resolve_pretrained_paths(cfg)
    assert str(e.value).endswith(f'to get it: {PRETRAINED_SOURCES[name]}')
    assert 'tools/model_converters/' in str(e.value) or 'wget' in str(e.value)
