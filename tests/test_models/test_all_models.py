# Copyright (c) mmext contributors. All rights reserved.
"""Every model in ``mmext.registry.MODELS``, built small (timm style).

The rows live in :data:`mmext.testing.tiny_models.TINY_MODELS`; registering a
model without adding a row there fails :func:`test_every_model_has_a_row`.
Each model is built, run forward and backward (every trainable parameter
gets a finite gradient), round-tripped through ``state_dict`` into a
differently initialised copy, checked deterministic in eval mode, and run
under CPU bf16 autocast.
"""
import pytest
import torch

from mmext.registry import MODELS
from mmext.testing.tiny_models import TINY_MODELS, build_tiny
from mmext.utils import register_all_modules

register_all_modules(init_default_scope=False)
REGISTERED = sorted(MODELS.module_dict)


@pytest.fixture(scope='module')
def bert_dir(tmp_path_factory):
    from mmext.testing.bert import make_bert_folder
    return make_bert_folder(tmp_path_factory.mktemp('bert') / 'bert')


def _build(name, bert_dir, seed=0, train=False):
    if name not in TINY_MODELS:
        pytest.fail(f'{name} is registered in mmext MODELS but has no tiny '
                    'config; add a TinyCase row for it to TINY_MODELS in '
                    'mmext/testing/tiny_models.py')
    model = build_tiny(name, bert_dir, seed)
    # not chained: mmpretrain's BaseBackbone.train returns None
    model.train(train)
    return model


def _run(name, model, seed=0):
    case = TINY_MODELS[name]
    return case.run(model, case.inputs(seed))


def test_every_model_has_a_row():
    assert REGISTERED, 'mmext registered no models'
    missing = sorted(set(REGISTERED) - set(TINY_MODELS))
    assert not missing, (f'registered without a tiny config: {missing}; add '
                         'rows to mmext/testing/tiny_models.py TINY_MODELS')
    stale = sorted(set(TINY_MODELS) - set(REGISTERED))
    assert not stale, f'TINY_MODELS rows for unregistered models: {stale}'


@pytest.mark.parametrize('name', REGISTERED)
def test_forward_backward(name, bert_dir):
    model = _build(name, bert_dir, train=True)
    outputs = _run(name, model)
    assert outputs and all(torch.isfinite(o).all() for o in outputs)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not trainable:
        # data preprocessors: nothing to learn; say so instead of skipping
        assert not list(model.parameters()), name
        return
    # a fixed random projection, not a plain sum: the sum of a LayerNorm
    # output (gamma = 1) has zero gradient with respect to its input
    g = torch.Generator().manual_seed(0)
    skip = TINY_MODELS[name].no_backward
    sum((o.float() * torch.randn(o.shape, generator=g)).sum()
        for i, o in enumerate(outputs) if i not in skip).backward()
    unused = TINY_MODELS[name].unused
    no_grad = [
        n for n, p in trainable.items() if
        (p.grad is None or not p.grad.abs().sum()) and not n.startswith(unused)
    ]
    assert not no_grad, f'{name}: no gradient reaches {no_grad[:8]}'
    assert all(
        torch.isfinite(p.grad).all() for p in trainable.values()
        if p.grad is not None)


@pytest.mark.parametrize('name', REGISTERED)
def test_state_dict_round_trip_and_eval_determinism(name, bert_dir):
    model = _build(name, bert_dir, seed=0)
    state = model.state_dict()
    with torch.no_grad():
        first = _run(name, model)
        again = _run(name, model)
    for a, b in zip(first, again):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    other = _build(name, bert_dir, seed=1)
    if not state:
        # no persistent state (preprocessors keep mean / std as
        # non-persistent buffers); the copy must then equal the original
        assert not other.state_dict(), name
        return
    with torch.no_grad():
        before = _run(name, other)
    assert any(not torch.equal(a, b) for a, b in zip(first, before)), (
        f'{name}: a copy initialised with another seed gives the same '
        'outputs, so the round trip below would prove nothing')
    other.load_state_dict(state, strict=True)
    with torch.no_grad():
        after = _run(name, other)
    for a, b in zip(first, after):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize('name', REGISTERED)
def test_cpu_bf16_autocast(name, bert_dir):
    model = _build(name, bert_dir)
    with torch.no_grad():
        ref = _run(name, model)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = _run(name, model)
    for r, x in zip(ref, low):
        assert x.shape == r.shape and torch.isfinite(x).all()
        r, x = r.float(), x.float()
        # bf16 has an 8-bit mantissa: a few per cent of the output scale
        err = (x - r).abs().max() / r.abs().max().clamp(min=1e-6)
        assert err < 0.1, f'{name}: bf16 autocast off by {err:.3f}'
