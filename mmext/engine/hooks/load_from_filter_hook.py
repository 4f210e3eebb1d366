# Copyright (c) mmext contributors. All rights reserved.
"""Drop parts of a ``load_from`` checkpoint (e.g. a head for other classes)."""
import fnmatch

from mmengine.hooks import Hook

from mmext.registry import HOOKS

__all__ = ['LoadFromFilterHook']


@HOOKS.register_module()
class LoadFromFilterHook(Hook):
    """Remove state-dict keys from the ``load_from`` checkpoint before it is
    loaded, so those modules keep their fresh initialisation.

    Two-stage transfer (pretrain on Flowers-102, fine-tune on Flowers-17)
    starts stage 2 from the stage-1 checkpoint, whose classifier has 102
    outputs. mmengine's ``load_from`` would try to copy it and only log a
    size-mismatch warning; this hook drops the named keys explicitly and
    logs them, and leaves ``resume`` untouched (a resumed stage-2 run must
    get its own 17-class head back).

    Args:
        drop (Sequence[str]): Glob patterns of state-dict keys to drop.
            Defaults to ``('head.*', )``.

    Example:
        >>> load_from = 'work_dirs/stage1/epoch_100.pth'
        >>> custom_hooks = [dict(type='LoadFromFilterHook', drop=['head.*'])]
    """

    priority = 'VERY_HIGH'

    def __init__(self, drop=('head.*', )):
        if isinstance(drop, str):
            drop = [drop]
        self.drop = list(drop)

    def after_load_checkpoint(self, runner, checkpoint):
        if getattr(runner, '_resume', False):
            return
        state = checkpoint.get('state_dict', checkpoint)
        keys = [k for k in state
                if any(fnmatch.fnmatchcase(k, p) for p in self.drop)]
        if not keys:
            raise KeyError(
                f'LoadFromFilterHook: no key of the load_from checkpoint '
                f'matches {self.drop} (keys look like {next(iter(state))!r})'
                '; fix the patterns')
        for k in keys:
            del state[k]
        runner.logger.info(
            f'LoadFromFilterHook: dropped {len(keys)} keys from load_from '
            f'({", ".join(keys[:4])}{", ..." if len(keys) > 4 else ""}); '
            'those modules keep their initialisation')
