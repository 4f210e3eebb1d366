# Copyright (c) mmext contributors. All rights reserved.
"""TRAR temperature schedules (rentainhe/TRAR-VQA train_engine.py values)
and the hook setting every router's tau, epoch- and iteration-based."""
from types import SimpleNamespace

import pytest

from mmext.engine.hooks import TRARTemperatureHook
from mmext.engine.hooks.trar_temperature_hook import trar_tau
from mmext.models.layers import SpanRouter


def test_slow_is_linear_from_tau_max_to_tau_min():
    taus = [trar_tau('slow', e, 13) for e in range(13)]
    assert taus[0] == 10 and taus[-1] == pytest.approx(0.1)
    steps = [a - b for a, b in zip(taus, taus[1:])]
    assert steps == pytest.approx([9.9 / 12] * 12)


def test_fast_matches_reference_values():
    # reference: e < 3: 10 - 9 e / 3; else 1 - (e - 3) / 10 (13 epochs)
    expected = [10, 7, 4, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    assert [trar_tau('fast', e, 13)
            for e in range(13)] == pytest.approx(expected)
    assert trar_tau('fast', 20, 30) == 0.1  # clamped, the reference is < 0


def test_finetune_matches_reference_values():
    # reference: 1 - (e - 13) / 4 before the last epoch, then 0.1
    assert [trar_tau('finetune', e, 17) for e in (13, 14, 15, 16)] == \
        pytest.approx([1.0, 0.75, 0.5, 0.1])
    assert trar_tau('finetune', 0, 17) == 4.25


def test_unknown_policy():
    with pytest.raises(ValueError, match="policy='cosine' is not one of"):
        TRARTemperatureHook(policy='cosine')


class _Hub:

    def __init__(self):
        self.scalars = {}

    def update_scalar(self, key, value):
        self.scalars.setdefault(key, []).append(value)


def _runner(model, **kw):
    loop = SimpleNamespace(max_epochs=kw.get('max_epochs'))
    return SimpleNamespace(
        model=model,
        train_loop=loop,
        message_hub=_Hub(),
        logger=SimpleNamespace(warning=lambda msg: _runner.warned.append(msg)),
        train_dataloader=[0] * kw.get('loader_len', 4),
        **kw)


_runner.warned = []


def test_hook_sets_tau_on_routers_epoch_and_iter_based():
    import torch.nn as nn
    model = nn.Sequential(
        SpanRouter(8, 3, routing='hard'), SpanRouter(8, 2, routing='hard'))
    hook = TRARTemperatureHook(policy='slow')
    runner = _runner(model, epoch=3, max_epochs=4, iter=0, max_iters=0)
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    assert [m.tau for m in model] == [pytest.approx(0.1)] * 2
    # iteration-based: 4 iterations per "epoch" (dataloader length), 16 total
    runner = _runner(model, epoch=0, max_epochs=None, iter=9, max_iters=16)
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    assert model[0].tau == pytest.approx(trar_tau('slow', 2, 4))
    assert runner.message_hub.scalars['train/tau'] == [model[0].tau]


def test_hook_warns_when_nothing_is_hard_routed():
    import torch.nn as nn
    _runner.warned.clear()
    hook = TRARTemperatureHook()
    hook.before_train(
        _runner(nn.Sequential(SpanRouter(8, 2)), epoch=0, max_epochs=2))
    assert len(_runner.warned) == 1 and "routing='hard'" in _runner.warned[0]
