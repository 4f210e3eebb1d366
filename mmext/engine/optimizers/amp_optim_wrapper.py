# Copyright (c) mmext contributors. All rights reserved.
"""``--amp`` on machines without a GPU."""
import torch
from mmengine.device import (is_cuda_available, is_mlu_available,
                             is_musa_available, is_npu_available)
from mmengine.optim import AmpOptimWrapper as _MMEngineAmpOptimWrapper
from mmengine.optim import OptimWrapper

from mmext.registry import OPTIM_WRAPPERS


def _accelerator_available():
    return (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available())


@OPTIM_WRAPPERS.register_module(name='AmpOptimWrapper')
class AmpOptimWrapper(_MMEngineAmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper``, plus bfloat16 autocast on CPU.

    mmengine 0.10.7 asserts a GPU (or NPU / MLU / MUSA) in
    ``AmpOptimWrapper``, so ``tools/train.py --amp`` fails on a CPU-only
    machine although torch autocasts to bfloat16 there. Registered under the
    same name in the ``mmext`` scope, this class changes nothing when an
    accelerator is present; without one it autocasts to bfloat16 and skips
    loss scaling (bfloat16 has float32's exponent range, so gradients do not
    underflow).

    Args:
        loss_scale (str | float | dict): As mmengine's; ignored on CPU.
        dtype (str | torch.dtype, optional): As mmengine's; on CPU only
            ``None`` or bfloat16 is accepted.
        **kwargs: Passed to :class:`mmengine.optim.OptimWrapper`.

    Example:
        >>> optim_wrapper = dict(type='AmpOptimWrapper',
        ...                      optimizer=dict(type='SGD', lr=0.1))
    """

    def __init__(self,
                 loss_scale='dynamic',
                 dtype=None,
                 use_fsdp=False,
                 **kwargs):
        if _accelerator_available():
            super().__init__(
                loss_scale=loss_scale,
                dtype=dtype,
                use_fsdp=use_fsdp,
                **kwargs)
            return
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        if dtype not in (None, torch.bfloat16):
            raise ValueError(f'AmpOptimWrapper: CPU autocast supports only '
                             f'bfloat16, got dtype={dtype}; drop `dtype` or '
                             "set it to 'bfloat16'")
        OptimWrapper.__init__(self, **kwargs)
        self.cast_dtype = torch.bfloat16
        self._scale_update_param = None
        self.loss_scaler = None

    def backward(self, loss, **kwargs):
        if self.loss_scaler is None:
            return OptimWrapper.backward(self, loss, **kwargs)
        return super().backward(loss, **kwargs)

    def step(self, **kwargs):
        if self.loss_scaler is None:
            return OptimWrapper.step(self, **kwargs)
        return super().step(**kwargs)

    def state_dict(self):
        if self.loss_scaler is None:
            return OptimWrapper.state_dict(self)
        return super().state_dict()

    def load_state_dict(self, state_dict):
        if self.loss_scaler is None:
            state_dict = dict(state_dict)
            state_dict.pop('loss_scaler', None)  # saved on a GPU machine
            return OptimWrapper.load_state_dict(self, state_dict)
        return super().load_state_dict(state_dict)
