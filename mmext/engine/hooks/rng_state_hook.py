# Copyright (c) mmext contributors. All rights reserved.
"""Exact resume: carry the random number generators' states in checkpoints."""
import random

import numpy as np
import torch
from mmengine.hooks import Hook

from mmext.registry import HOOKS


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the Python, NumPy and torch RNG states with every checkpoint and
    restore them on ``--resume``.

    mmengine re-seeds a resumed run from the config seed, so random
    augmentation (flips, crops) after a resume differs from the uninterrupted
    run and the two runs end with different weights. With this hook (on by
    default in ``configs/_base_/default_runtime.py``) a run resumed at an
    epoch boundary with ``num_workers=0`` is bit-identical to one that never
    stopped. Loader workers are re-seeded by mmengine per worker; their
    streams follow the config seed as before. ``load_from`` (fine-tuning from
    another run) leaves the generators alone.

    Validation draws from the global torch generator too (every DataLoader
    iterator takes a base seed from it), so the hook also restores the states
    after each validation: validating, or not, no longer changes training.

    Args:
        enable (bool): False turns the hook off (mmengine does not allow
            ``None`` for a default hook it does not know). Defaults to True.

    Example:
        >>> default_hooks = dict(rng_state=dict(type='RNGStateHook'))
    """

    priority = 'VERY_LOW'

    def __init__(self, enable=True):
        self.enable = enable
        self._before_val = None

    @staticmethod
    def get_state():
        state = dict(
            python=random.getstate(),
            numpy=np.random.get_state(),
            torch=torch.get_rng_state())
        if torch.cuda.is_available():
            state['cuda'] = torch.cuda.get_rng_state_all()
        return state

    @staticmethod
    def set_state(state):
        version, internal, gauss = state['python']
        random.setstate((version, tuple(internal), gauss))
        np.random.set_state(state['numpy'])
        torch.set_rng_state(state['torch'])
        if 'cuda' in state and torch.cuda.is_available() and \
                len(state['cuda']) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state['cuda'])

    def before_save_checkpoint(self, runner, checkpoint):
        if not self.enable:
            return
        checkpoint['rng_state'] = self.get_state()

    def before_val_epoch(self, runner):
        if not self.enable:
            return
        self._before_val = self.get_state()

    def after_val_epoch(self, runner, metrics=None):
        if self._before_val is not None:
            self.set_state(self._before_val)
            self._before_val = None

    def after_load_checkpoint(self, runner, checkpoint):
        state = checkpoint.get('rng_state')
        if (not self.enable or state is None
                or not getattr(runner, '_resume', False)):
            return
        self.set_state(state)
        runner.logger.info('Restored the Python / NumPy / torch random '
                           'states saved in the checkpoint')
