# Copyright (c) mmext contributors. All rights reserved.
from types import SimpleNamespace

import pytest
from mmengine.logging import MMLogger
from torch import nn

from mmext.engine.hooks import LoadFromFilterHook


class Net(nn.Module):

    def __init__(self, num_classes):
        super().__init__()
        self.backbone = nn.Linear(4, 8)
        self.head = nn.Sequential()
        self.head.fc = nn.Linear(8, num_classes)


def _runner(model):
    return SimpleNamespace(
        model=model, logger=MMLogger.get_instance('test_filter_hook'))


def _checkpoint(model, prefix=''):
    return {
        'state_dict':
        {prefix + k: v.clone()
         for k, v in model.state_dict().items()},
        'meta': {}
    }


def test_drops_reshaped_head_only():
    ckpt = _checkpoint(Net(102), prefix='module.')
    LoadFromFilterHook(drop=['head.*']).after_load_checkpoint(
        _runner(Net(17)), ckpt)
    assert sorted(ckpt['state_dict']) == [
        'module.backbone.bias', 'module.backbone.weight'
    ]


def test_keeps_head_of_same_shape():
    """Resuming, or testing a stage-2 checkpoint: the head loads whole."""
    ckpt = _checkpoint(Net(17))
    LoadFromFilterHook().after_load_checkpoint(_runner(Net(17)), ckpt)
    assert 'head.fc.weight' in ckpt['state_dict']
    model = Net(17)
    model.load_state_dict(ckpt['state_dict'])


def test_pattern_matching_nothing_is_an_error():
    with pytest.raises(KeyError, match=r"no key .* matches \['neck\.\*'\]"):
        LoadFromFilterHook(drop='neck.*').after_load_checkpoint(
            _runner(Net(17)), _checkpoint(Net(102)))
