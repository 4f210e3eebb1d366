# Copyright (c) mmext contributors. All rights reserved.
"""Shrinking shipped configs for tests: the parts every family shares.

A config test overrides the architecture for its own family, then calls
:func:`shrink_runtime` for what is the same everywhere (batch 2, no worker
processes, log every iteration, its own work dir, no launcher) and
:func:`drop_pretrained` where no weights are present.
"""
from mmext.utils.config import walk_config

__all__ = ['walk_config', 'shrink_runtime', 'drop_pretrained']

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def shrink_runtime(cfg, work_dir, batch_size=2):
    """Batch ``batch_size``, no workers, log every iteration, ``work_dir``.

    Args:
        cfg (Config): A loaded config (changed in place).
        work_dir (str | Path): Where the run writes.
        batch_size (int): Per-loader batch size. Defaults to 2.

    Returns:
        Config: ``cfg``.
    """
    for key in DATALOADERS:
        if cfg.get(key):
            cfg[key].update(
                batch_size=batch_size, num_workers=0, persistent_workers=False)
    if cfg.get('default_hooks', {}).get('logger'):
        cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(work_dir)
    cfg.launcher = 'none'
    return cfg


def drop_pretrained(cfg):
    """Remove every ``init_cfg=dict(type='Pretrained', ...)`` of a
    ``Config`` or config dict (no weights in a test); returns ``cfg``."""

    def patch(d):
        init = d.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            d['init_cfg'] = None

    walk_config(getattr(cfg, '_cfg_dict', cfg), patch)
    return cfg
