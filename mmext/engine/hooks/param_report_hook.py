# Copyright (c) mmext contributors. All rights reserved.
"""Log trainable / total parameters per module when training starts."""
from collections import OrderedDict

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmext.models.utils.freeze import is_kept_in_eval
from mmext.registry import HOOKS

__all__ = ['TrainableParamsHook', 'param_table']


def param_table(model, depth=2):
    """Rows ``(group, trainable, total)`` of parameter element counts.

    Args:
        model (nn.Module): The model.
        depth (int): Group parameters by the first ``depth`` parts of their
            names (``backbone.layers`` at 2). Defaults to 2.

    Returns:
        list[tuple]: One row per group in model order, then ``'total'``.
    """
    rows = OrderedDict()
    for name, p in model.named_parameters():
        row = rows.setdefault('.'.join(name.split('.')[:depth]), [0, 0])
        row[0] += p.numel() if p.requires_grad else 0
        row[1] += p.numel()
    out = [(k, *v) for k, v in rows.items()]
    out.append(('total', sum(r[1] for r in out), sum(r[2] for r in out)))
    return out


@HOOKS.register_module()
class TrainableParamsHook(Hook):
    """Log a table of trainable / total parameters before training.

    A partial fine-tuning run is only what it claims if the right tensors are
    frozen and the optimizer holds exactly the trainable ones; mmengine logs
    neither. This hook prints, per module group, trainable and total
    parameter counts and the fully frozen sub-modules kept in eval mode
    (see ``PartialFreeze``), and warns when the optimizer holds
    frozen tensors or misses trainable ones.

    Args:
        depth (int): Name depth of the groups (``backbone.layers`` at 2).
            Defaults to 2.

    Example:
        >>> custom_hooks = [dict(type='TrainableParamsHook', depth=2)]
        >>> # logs e.g. "backbone.layers  28,351,488 / 85,054,464  (33.3%)"
    """

    priority = 'VERY_LOW'

    def __init__(self, depth=2):
        self.depth = depth

    def before_train(self, runner):
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        rows = param_table(model, self.depth)
        width = max(len(r[0]) for r in rows)
        lines = [
            f'{"module":<{width}}  {"trainable":>13} / {"total":<13}'
            f'  {"%":>6}'
        ]
        for name, trainable, total in rows:
            pct = 100.0 * trainable / max(total, 1)
            lines.append(f'{name:<{width}}  {trainable:>13,} / {total:<13,}'
                         f'  {pct:>5.1f}%')
        pinned = [n for n, m in model.named_modules() if is_kept_in_eval(m)]
        if pinned:
            more = ', ...' if len(pinned) > 6 else ''
            shown = ', '.join(pinned[:6]) + more
            lines.append(f'kept in eval mode (fully frozen): {len(pinned)} '
                         f'modules: {shown}')
        runner.logger.info('Trainable parameters:\n' + '\n'.join(lines))
        self._check_optimizer(runner, model)

    @staticmethod
    def _check_optimizer(runner, model):
        optim_wrapper = getattr(runner, 'optim_wrapper', None)
        # an OptimWrapperDict (several optimizers) holds `optim_wrappers`
        wrappers = getattr(optim_wrapper, 'optim_wrappers', None)
        wrappers = list(wrappers.values()) if wrappers else [optim_wrapper]
        optimizers = [getattr(w, 'optimizer', None) for w in wrappers]
        if not all(hasattr(o, 'param_groups') for o in optimizers):
            return  # not built (e.g. a test-only runner)
        in_optim = {
            id(p)
            for o in optimizers for g in o.param_groups for p in g['params']
        }
        named = list(model.named_parameters())
        frozen_in = [
            n for n, p in named if not p.requires_grad and id(p) in in_optim
        ]
        missing = [
            n for n, p in named if p.requires_grad and id(p) not in in_optim
        ]
        if frozen_in:
            runner.logger.warning(
                f'{len(frozen_in)} frozen tensors (e.g. {frozen_in[0]}) are '
                'in the optimizer; use constructor='
                "'TrainableOptimWrapperConstructor' in optim_wrapper to leave "
                'them out')
        if missing:
            runner.logger.warning(
                f'{len(missing)} trainable tensors (e.g. {missing[0]}) are '
                'not in the optimizer and will never be updated')
