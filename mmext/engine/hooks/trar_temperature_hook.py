# Copyright (c) mmext contributors. All rights reserved.
"""Anneal the Gumbel-softmax temperature of TRAR's hard routing."""
import math

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmext.models.layers import SpanRouter
from mmext.registry import HOOKS

__all__ = ['TRARTemperatureHook', 'trar_tau']

POLICIES = ('slow', 'fast', 'finetune')


def trar_tau(policy,
             epoch,
             max_epochs,
             tau_max=10.,
             tau_min=0.1,
             warmup_epochs=3,
             decay_epochs=10,
             finetune_start=13,
             finetune_decay=4):
    """Temperature of epoch ``epoch`` (0-based) under a TRAR-VQA policy.

    The schedules of rentainhe/TRAR-VQA ``utils/train_engine.py``:

    - ``slow``: linear from ``tau_max`` (first epoch) to ``tau_min`` (last).
    - ``fast``: ``tau_max -> 1`` over ``warmup_epochs`` (reference: 3), then
      ``1 - (epoch - 3) / 10`` (reaches 0.1 at epoch 12 of its 13).
    - ``finetune``: ``1 - (epoch - 13) / 4`` (the reference resumes at epoch
      13), and ``tau_min`` in the last epoch.

    The reference does not clamp; here the result is clamped to
    ``[tau_min, tau_max]`` so longer runs never reach tau <= 0.
    """
    if policy == 'slow':
        tau = tau_max - (tau_max - tau_min) * epoch / max(max_epochs - 1, 1)
    elif policy == 'fast':
        if epoch < warmup_epochs:
            tau = tau_max - (tau_max - 1.) * epoch / warmup_epochs
        else:
            tau = 1. - (epoch - warmup_epochs) / decay_epochs
    elif policy == 'finetune':
        if epoch < max_epochs - 1:
            tau = 1. - (epoch - finetune_start) / finetune_decay
        else:
            tau = tau_min
    else:
        raise ValueError(f'TRARTemperatureHook: policy={policy!r} is not one '
                         f'of {POLICIES}')
    return min(max(tau, tau_min), tau_max)


@HOOKS.register_module()
class TRARTemperatureHook(Hook):
    """Set the Gumbel temperature of every TRAR router before each epoch.

    TRAR (Zhou et al., ICCV 2021) anneals the temperature of its hard
    (Gumbel-softmax) routing from ``TAU_MAX = 10`` to ``TAU_MIN = 0.1`` with
    one of three policies (see :func:`trar_tau`). The reference sets it in its
    own training loop; this hook does it for mmengine runners, epoch- or
    iteration-based (then ``iters_per_epoch`` iterations count as an epoch;
    by default the length of the train dataloader), and logs ``tau``.
    Stateless, so a resumed run gets the same temperatures.

    Args:
        policy (str): ``'slow'``, ``'fast'`` or ``'finetune'``.
            Defaults to ``'slow'``.
        tau_max (float): Defaults to 10.
        tau_min (float): Defaults to 0.1.
        iters_per_epoch (int, optional): Epoch length for iteration-based
            loops. Defaults to None (``len(train_dataloader)``).
        **policy_kwargs: ``warmup_epochs``, ``decay_epochs``,
            ``finetune_start``, ``finetune_decay`` of :func:`trar_tau`.

    Example:
        >>> custom_hooks = [dict(type='TRARTemperatureHook', policy='fast')]
    """

    priority = 'NORMAL'

    def __init__(self,
                 policy='slow',
                 tau_max=10.,
                 tau_min=0.1,
                 iters_per_epoch=None,
                 **policy_kwargs):
        if policy not in POLICIES:
            raise ValueError(f'TRARTemperatureHook: policy={policy!r} is not '
                             f'one of {POLICIES}')
        self.policy = policy
        self.tau_max = tau_max
        self.tau_min = tau_min
        self.iters_per_epoch = iters_per_epoch
        self.policy_kwargs = policy_kwargs

    def before_train(self, runner):
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        self._routers = [
            m for m in model.modules() if isinstance(m, SpanRouter)
        ]
        if not any(r.routing == 'hard' for r in self._routers):
            runner.logger.warning(
                'TRARTemperatureHook: the model has no hard-routed TRAR '
                "layer, so the temperature changes nothing (set "
                "routing='hard' in the backbone or drop the hook)")

    def _epoch_progress(self, runner):
        if getattr(runner.train_loop, 'max_epochs', None) is not None and \
                self.iters_per_epoch is None:
            return runner.epoch, runner.max_epochs
        period = self.iters_per_epoch or len(runner.train_dataloader)
        return runner.iter // period, math.ceil(runner.max_iters / period)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        epoch, max_epochs = self._epoch_progress(runner)
        tau = trar_tau(self.policy, epoch, max_epochs, self.tau_max,
                       self.tau_min, **self.policy_kwargs)
        for router in self._routers:
            router.tau = tau
        runner.message_hub.update_scalar('train/tau', tau)
