# Copyright (c) mmext contributors. All rights reserved.
"""An optimizer-wrapper constructor that only sees trainable parameters."""
import logging
from collections import OrderedDict

from mmengine.logging import MMLogger, print_log
from mmengine.optim import DefaultOptimWrapperConstructor

from mmext.registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = ['TrainableOptimWrapperConstructor']


class _DropFrozenWarnings(logging.Filter):
    """mmengine logs one warning per frozen tensor; we log one summary."""

    def filter(self, record):
        return 'is skipped since its requires_grad=False' not in \
            record.getMessage()


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TrainableOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Optimizer over trainable parameters, with optional layer-wise lr decay.

    Partial fine-tuning (frozen stages, linear probing) needs frozen tensors
    kept out of the optimizer. mmengine's ``DefaultOptimWrapperConstructor``
    hands every parameter to the optimizer when ``paramwise_cfg`` is empty
    (frozen ones included) and otherwise makes one param group per tensor
    and logs a warning per frozen one. mmpretrain's
    ``LearningRateDecayOptimWrapperConstructor`` (layer-wise lr decay, as in
    BEiT, Bao et al., ICLR 2022) skips frozen tensors but drops the default
    rules (``lr_mult`` in ``custom_keys``, ``bias_lr_mult``) and fails on
    backbones without ``get_layer_depth``. This constructor keeps all of
    ``paramwise_cfg`` from the default constructor, always leaves frozen
    tensors out, applies ``layer_decay_rate`` (same formula as mmpretrain:
    ``lr * rate ** (max_depth - depth - 1)``) when given, and merges groups
    with equal settings (one group per tensor slows the optimizer step).

    Args:
        optim_wrapper_cfg (dict): As the default constructor.
        paramwise_cfg (dict, optional): The default constructor's keys plus
            ``layer_decay_rate`` (float), which needs the model (or its
            backbone) to provide ``get_layer_depth``. Defaults to None.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
        >>> _ = model[0].requires_grad_(False)
        >>> wrapper = TrainableOptimWrapperConstructor(
        ...     dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)))(model)
        >>> [len(g['params']) for g in wrapper.optimizer.param_groups]
        [2]
    """

    def __call__(self, model):
        if hasattr(model, 'module'):
            model = model.module
        # the default constructor takes `model.parameters()` when there is
        # no paramwise_cfg; a non-empty one makes it go through add_params
        paramwise_cfg = self.paramwise_cfg
        self.paramwise_cfg = paramwise_cfg or {'custom_keys': {}}
        try:
            return super().__call__(model)
        finally:
            self.paramwise_cfg = paramwise_cfg

    def add_params(self, params, module, prefix='', is_dcn_module=None):
        if prefix:  # only the top-level call post-processes
            return super().add_params(params, module, prefix, is_dcn_module)
        logger = MMLogger.get_current_instance()
        quiet = _DropFrozenWarnings()
        logger.addFilter(quiet)
        try:
            super().add_params(params, module, prefix, is_dcn_module)
        finally:
            logger.removeFilter(quiet)
        names = {id(p): n for n, p in module.named_parameters()}
        frozen = sum(not p.requires_grad for p in module.parameters())
        if not params:
            raise ValueError(
                'TrainableOptimWrapperConstructor: every parameter of '
                f'{type(module).__name__} is frozen; unfreeze something '
                '(e.g. PartialFreeze frozen_stages < number of stages)')
        rate = self.paramwise_cfg.get('layer_decay_rate')
        if rate is not None:
            self._decay_lr(params, module, names, rate)
        merged = _merge_equal_groups(params)
        params[:] = merged
        print_log(
            f'TrainableOptimWrapperConstructor: {len(names) - frozen} '
            f'trainable tensors in {len(merged)} param groups; {frozen} '
            'frozen tensors left out of the optimizer' +
            (f'; layer_decay_rate={rate}' if rate is not None else ''),
            logger='current')

    def _decay_lr(self, params, model, names, rate):
        get_depth = getattr(model, 'get_layer_depth', None)
        for group in params:
            name = names[id(group['params'][0])]
            try:
                if get_depth is None:
                    raise NotImplementedError
                depth, num_depths = get_depth(name)
            except NotImplementedError:
                backbone = getattr(model, 'backbone', model)
                raise ValueError(
                    f'layer_decay_rate={rate} needs get_layer_depth, which '
                    f'{type(backbone).__name__} lacks or does not support '
                    'for this architecture; remove layer_decay_rate from '
                    'paramwise_cfg') from None
            scale = rate**(num_depths - depth - 1)
            group['lr'] = group.get('lr', self.base_lr) * scale


def _merge_equal_groups(groups):
    """Concatenate the ``params`` of groups whose other settings are equal,
    keeping first-seen order."""
    merged = OrderedDict()
    for group in groups:
        key = tuple(
            sorted((k, repr(v)) for k, v in group.items() if k != 'params'))
        if key in merged:
            merged[key]['params'].extend(group['params'])
        else:
            merged[key] = dict(group, params=list(group['params']))
    return list(merged.values())
