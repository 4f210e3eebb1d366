# Copyright (c) mmext contributors. All rights reserved.
"""--amp without a GPU: bfloat16 autocast, plain (unscaled) steps."""
import pytest
import torch
from mmengine.registry import DefaultScope

from mmext.registry import OPTIM_WRAPPERS
from mmext.utils import register_all_modules

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(), reason='tests the CPU path')


def _build(**kw):
    register_all_modules(init_default_scope=False)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    with DefaultScope.overwrite_default_scope('mmext'):
        wrapper = OPTIM_WRAPPERS.build(
            dict(
                type='AmpOptimWrapper',
                optimizer=torch.optim.SGD(
                    model.parameters(), lr=0.1, momentum=0.9),
                **kw))
    return model, wrapper


def test_cpu_amp_autocasts_to_bf16_and_steps():
    model, wrapper = _build()
    assert type(wrapper).__module__.startswith('mmext')
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(4, 8)
    with wrapper.optim_context(model):
        out = model(x)
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().pow(2).mean())
    assert all(not torch.equal(b, p)
               for b, p in zip(before, model.parameters()))
    # resumable: a GPU checkpoint's loss_scaler entry is ignored here
    state = wrapper.state_dict()
    state['loss_scaler'] = {'scale': 65536.0}
    _, other = _build()
    other.load_state_dict(state)


def test_cpu_amp_rejects_fp16():
    with pytest.raises(ValueError, match='only bfloat16'):
        _build(dtype='float16')
