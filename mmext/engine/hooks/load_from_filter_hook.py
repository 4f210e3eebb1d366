# Copyright (c) mmext contributors. All rights reserved.
"""Drop parts of a ``load_from`` checkpoint (e.g. a head for other classes)."""
import fnmatch

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmext.registry import HOOKS

__all__ = ['LoadFromFilterHook']


def _model_key(key):
    # DDP-saved checkpoints prefix keys with `module.`; mmengine strips it
    return key[len('module.'):] if key.startswith('module.') else key


@HOOKS.register_module()
class LoadFromFilterHook(Hook):
    """Drop checkpoint keys of a re-shaped module (e.g. a classifier for
    another number of classes) before loading, so it keeps its fresh
    initialisation.

    Two-stage transfer (pretrain on Flowers-102, fine-tune on Flowers-17)
    starts stage 2 from the stage-1 checkpoint, whose classifier has 102
    outputs. mmengine's ``load_from`` would try to copy it and only log a
    size-mismatch warning. This hook removes the keys that match ``drop``
    *and* whose shape differs from the model's, and logs them; a checkpoint
    of the run itself (``--resume``, or ``tools/test.py`` on a stage-2
    checkpoint) has matching shapes and loads whole.

    Args:
        drop (Sequence[str]): Glob patterns of state-dict keys that may be
            dropped. Defaults to ``('head.*', )``.

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
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        shapes = {k: v.shape for k, v in model.state_dict().items()}
        state = checkpoint.get('state_dict', checkpoint)
        matched = [
            k for k in state if any(
                fnmatch.fnmatchcase(_model_key(k), p) for p in self.drop)
        ]
        if not matched:
            raise KeyError(
                f'LoadFromFilterHook: no key of the loaded checkpoint '
                f'matches {self.drop} (keys look like {next(iter(state))!r})'
                '; fix the patterns')
        dropped = [
            k for k in matched if _model_key(k) in shapes
            and shapes[_model_key(k)] != state[k].shape
        ]
        for k in dropped:
            del state[k]
        if dropped:
            runner.logger.info(
                f'LoadFromFilterHook: dropped {len(dropped)} keys whose shape '
                f'differs from the model ({", ".join(dropped[:4])}'
                f'{", ..." if len(dropped) > 4 else ""}); those modules keep '
                'their initialisation')
