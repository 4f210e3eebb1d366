# Copyright (c) mmext contributors. All rights reserved.
"""A checkpoint that does not fit the model is an error on every mmengine
load path (load_checkpoint, Runner.load_checkpoint, Pretrained with and
without prefix, tools/test.py), not a warning and random weights; partial
loads (new head, backbone from a classifier) still work."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from mmengine.config import Config
from mmengine.model import PretrainedInit
from mmengine.runner import checkpoint as mme_checkpoint
from mmengine.runner import load_checkpoint

from mmext.testing import make_image_folder
from mmext.utils import CheckpointMismatchError, CorruptCheckpointError
from tests.conftest import ROOT, TINY_CONFIG, run_tool


class Classifier(torch.nn.Module):
    """14 keys (12 in the backbone) besides num_batches_tracked."""

    def __init__(self, classes=10, width=8):
        super().__init__()
        self.backbone = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3), torch.nn.BatchNorm2d(width),
            torch.nn.Conv2d(width, width, 3), torch.nn.BatchNorm2d(width))
        self.head = torch.nn.Linear(width, classes)


def _save(tmp_path, name, obj):
    path = tmp_path / name
    torch.save(obj, path)
    return str(path)


def test_unrelated_checkpoint_is_an_error_naming_both_sides(tmp_path):
    path = _save(tmp_path, 'x.pth',
                 {'state_dict': {
                     'w': torch.zeros(2),
                     'foo': torch.ones(1)
                 }})
    with pytest.raises(CheckpointMismatchError) as e:
        load_checkpoint(Classifier(), path)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1
    assert path in msg and 'shares 0 of 14 model keys' in msg
    assert "'w', 'foo'" in msg and "'backbone.0.weight'" in msg
    assert 'right checkpoint for this config' in msg


def test_partial_loads_still_work(tmp_path):
    """A checkpoint of the same network with another head loads."""
    src = Classifier(classes=5)
    path = _save(tmp_path, 'ft.pth', {'state_dict': src.state_dict()})
    model = Classifier(classes=10)
    load_checkpoint(model, path)
    assert torch.equal(model.backbone[0].weight, src.backbone[0].weight)
    # DDP-saved keys: mmengine strips 'module.' before matching
    ddp = {f'module.{k}': v for k, v in src.state_dict().items()}
    load_checkpoint(Classifier(5), _save(tmp_path, 'ddp.pth', ddp))


def test_shape_mismatches_do_not_count(tmp_path):
    path = _save(tmp_path, 'wide.pth', Classifier(width=16).state_dict())
    with pytest.raises(CheckpointMismatchError) as e:
        load_checkpoint(Classifier(), path)
    assert 'shares 1 of 14' in str(e.value)  # head.bias: (10, ) both
    assert ("13 more match by name only, e.g. 'backbone.0.weight' "
            '(16, 3, 3, 3) vs (8, 3, 3, 3)') in str(e.value)


def test_pretrained_prefix_checks_the_module_it_loads(tmp_path):
    src = Classifier(classes=5)
    path = _save(tmp_path, 'cls.pth', {'state_dict': src.state_dict()})
    target = Classifier().backbone
    PretrainedInit(checkpoint=path, prefix='backbone.')(target)
    assert torch.equal(target[0].weight, src.backbone[0].weight)
    with pytest.raises(CheckpointMismatchError, match="starting with 'neck.'"):
        PretrainedInit(checkpoint=path, prefix='neck.')(target)
    with pytest.raises(
            CheckpointMismatchError,
            match=r"shares 0 of 2 module \(prefix 'head.'\)"):
        PretrainedInit(
            checkpoint=path, prefix='head.')(
                torch.nn.Conv1d(1, 1, 1))
    # without a prefix: checked against the module's own keys
    with pytest.raises(CheckpointMismatchError, match='shares 0 of 12'):
        PretrainedInit(checkpoint=path)(Classifier().backbone)


@pytest.mark.parametrize('content,cause', [
    ([torch.zeros(2)], 'holds a list'),
    (torch.zeros(3), 'holds a Tensor'),
    ({
        'state_dict': [1, 2]
    }, "'state_dict' is a list"),
    ({
        0: torch.zeros(1),
        'w': torch.zeros(1)
    }, 'key 0 of type int'),
])
def test_non_state_dicts_are_one_line(tmp_path, content, cause):
    path = _save(tmp_path, 'odd.pth', content)
    loads = (
        lambda: load_checkpoint(Classifier(), path),
        lambda: mme_checkpoint._load_checkpoint_to_model(
            Classifier(), mme_checkpoint._load_checkpoint(path)),
        lambda: PretrainedInit(checkpoint=path, prefix='backbone.')
        (Classifier().backbone),
    )
    for load in loads:
        with pytest.raises(CorruptCheckpointError) as e:
            load()
        msg = str(e.value)
        assert len(msg.splitlines()) == 1 and path in msg, msg
        assert cause in msg, msg


def test_threshold_is_configurable(tmp_path, monkeypatch):
    first = dict(list(Classifier().state_dict().items())[:5])
    path = _save(tmp_path, 'five.pth', first)  # 5 of 14 keys
    with pytest.raises(CheckpointMismatchError, match='at least 0.5'):
        load_checkpoint(Classifier(), path)
    monkeypatch.setenv('MMEXT_CHECKPOINT_MIN_KEY_OVERLAP', '0.25')
    load_checkpoint(Classifier(), path)
    monkeypatch.setenv('MMEXT_CHECKPOINT_MIN_KEY_OVERLAP', '2')
    with pytest.raises(ValueError, match='fraction from 0 to 1'):
        load_checkpoint(Classifier(), path)


def test_runner_load_path_is_checked(tmp_path):
    """Runner.load_checkpoint uses the copy of _load_checkpoint_to_model
    that mmengine.runner.runner imported."""
    from mmengine.runner import runner as mme_runner
    assert getattr(mme_runner._load_checkpoint_to_model, '_mmext_checked')
    path = _save(tmp_path, 'x.pth', {'w': torch.zeros(1)})
    with pytest.raises(CheckpointMismatchError, match='shares 0 of 14'):
        mme_runner._load_checkpoint_to_model(
            Classifier(), mme_checkpoint._load_checkpoint(path))


def test_test_tool_refuses_wrong_checkpoints_in_one_line(tmp_path):
    data = tmp_path / 'data'
    make_image_folder(data, per_class=1, size=32)
    cfg = Config.fromfile(str(TINY_CONFIG))
    assert cfg.model.backbone.type.endswith('ResNet')
    cases = {
        'other.pth': ({
            'state_dict': {
                'w': torch.zeros(2),
                'foo': torch.zeros(1)
            }
        }, 'shares 0 of'),
        'list.pth': ([torch.zeros(1)], 'holds a list'),
    }
    for name, (obj, _) in cases.items():
        torch.save(obj, tmp_path / name)

    def run(name):
        return run_tool([
            'tools/test.py', TINY_CONFIG, tmp_path / name, '--work-dir',
            tmp_path / 'work', '--cfg-options',
            f'test_dataloader.dataset.data_root={data}'
        ],
                        cwd=ROOT,
                        check=False)

    with ThreadPoolExecutor(2) as pool:
        procs = dict(zip(cases, pool.map(run, cases)))
    for name, proc in procs.items():
        assert proc.returncode != 0, name
        err = proc.stderr.strip().splitlines()
        assert not any('Traceback' in line for line in err), err[-5:]
        assert name in err[-1] and cases[name][1] in err[-1], err[-1]
