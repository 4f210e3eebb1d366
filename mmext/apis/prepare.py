# Copyright (c) mmext contributors. All rights reserved.
"""Checks that make a broken config fail before training starts.

mmengine finds an unknown ``type``, a missing data root or a missing weight
file only when it builds that piece, which can be after minutes of work (or,
for ``init_cfg``, after the first epoch's data loading started).
:func:`prepare_config` finds all of them at once, up front.
"""
import difflib
import os.path as osp

import torch
from mmengine.config import Config

from mmext import registry as R
from mmext.utils import (register_all_modules, resolve_pretrained_paths,
                         setup_cpu_distributed)
from mmext.utils.config import format_config_path, iter_config

__all__ = [
    'ConfigError', 'check_config_types', 'check_data_roots',
    'check_auto_resume', 'prepare_config'
]


class ConfigError(ValueError):
    """A config names something that cannot be built."""


# top-level config key -> registry its ``type`` entries are built from
_TOP_LEVEL = {
    'model': R.MODELS,
    'train_dataloader': R.DATASETS,
    'val_dataloader': R.DATASETS,
    'test_dataloader': R.DATASETS,
    'val_evaluator': R.METRICS,
    'test_evaluator': R.METRICS,
    'default_hooks': R.HOOKS,
    'custom_hooks': R.HOOKS,
    'param_scheduler': R.PARAM_SCHEDULERS,
    'optim_wrapper': R.OPTIM_WRAPPERS,
    'visualizer': R.VISUALIZERS,
    'log_processor': R.LOG_PROCESSORS,
    'model_wrapper_cfg': R.MODEL_WRAPPERS,
}
# nested key -> registry (overrides the parent's registry below that key)
_NESTED = {
    'pipeline': R.TRANSFORMS,
    'transforms': R.TRANSFORMS,
    'sampler': R.DATA_SAMPLERS,
    'collate_fn': R.FUNCTIONS,
    'batch_sampler': R.DATA_SAMPLERS,
    'dataset': R.DATASETS,
    'datasets': R.DATASETS,
    'init_cfg': R.WEIGHT_INITIALIZERS,
    'augments': R.BATCH_AUGMENTS,
    'optimizer': R.OPTIMIZERS,
    'constructor': R.OPTIM_WRAPPER_CONSTRUCTORS,
    'vis_backends': R.VISBACKENDS,
    'data_preprocessor': R.MODELS,
    'tta_model': R.MODELS,
}
# keys whose ``type`` is a plain option, not a registry name
_UNTYPED = {'clip_grad'}
_ALL = [getattr(R, name) for name in R.__all__ if getattr(R, name) is not None]


def _known(registry, key):
    try:
        return registry.get(key) is not None
    except Exception:
        return False


def _names(registry):
    names, reg = set(), registry
    while reg is not None:
        names.update(reg._module_dict)
        reg = reg.parent
    return names


def _unknown_types(top_key, node, registry):
    """One message per dict under ``node`` whose ``type`` no registry has;
    a dict's registry is that of the nearest key above it in ``_NESTED``
    (else ``registry``), and nothing below an ``_UNTYPED`` key is a
    registry name."""
    errors = []
    for path, _, _, value in iter_config(node):
        t = value.get('type') if isinstance(value, dict) else None
        if not isinstance(t, str) or any(k in _UNTYPED for k in path) or \
                any(_known(r, t) for r in _ALL):
            continue
        scope = next((_NESTED[k] for k in reversed(path) if k in _NESTED),
                     registry)
        hint = difflib.get_close_matches(t, _names(scope), n=1)
        hint = f"; did you mean '{hint[0]}'?" if hint else (
            '; check the spelling or add the module to custom_imports')
        errors.append(f"{format_config_path((top_key, ) + path)}: type "
                      f"'{t}' is not registered in the '{scope.name}' "
                      f'registry of mmext, mmpretrain or mmengine{hint}')
    return errors


def check_config_types(cfg):
    """Raise :class:`ConfigError` listing every ``type`` nothing registers.

    Every registry is consulted (a type is only unknown if no registry has
    it); the message names the registry it should have come from.
    """
    register_all_modules(init_default_scope=False)
    errors = []
    for key, registry in _TOP_LEVEL.items():
        if cfg.get(key) is not None:
            errors += _unknown_types(key, cfg[key], registry)
    if errors:
        raise ConfigError('\n'.join(errors))


def check_data_roots(cfg,
                     keys=('train_dataloader', 'val_dataloader',
                           'test_dataloader')):
    """Raise FileNotFoundError for a dataloader (of ``keys``) whose
    ``data_root`` is missing, with the data set's expected layout."""
    for key in keys:
        loader = cfg.get(key)
        if not loader:
            continue
        dataset = loader.get('dataset', {})
        while isinstance(dataset, dict) and 'dataset' in dataset:
            dataset = dataset['dataset']  # dataset wrappers
        root = dataset.get('data_root') if isinstance(dataset, dict) else None
        if root and not osp.isdir(root):
            t = dataset.get('type')
            cls = R.DATASETS.get(t) if isinstance(t, str) else t
            layout = getattr(cls, 'LAYOUT', None) or \
                'see data/README.md for the expected layout'
            raise FileNotFoundError(
                f'{key}: data_root {root!r} of {t} does not exist; expected '
                f'layout: {layout}')


def check_auto_resume(work_dir):
    """Fail before training when ``last_checkpoint`` cannot be resumed.

    mmengine reads ``<work_dir>/last_checkpoint`` and, when it is empty or
    names a deleted file, fails inside the runner with a bare
    ``checkpoint  can not be found``.
    """
    if not work_dir:
        return
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return
    with open(pointer, encoding='utf-8', errors='replace') as f:
        target = f.read().strip()
    if not target:
        raise FileNotFoundError(
            f'{pointer} is empty: delete it to start training from scratch, '
            'or pass --resume CHECKPOINT')
    if '://' not in target and not osp.isfile(target):
        raise FileNotFoundError(
            f'{pointer} names {target}, which does not exist: pass --resume '
            'CHECKPOINT, or delete the file to start from scratch')


def prepare_config(cfg, mode='train'):
    """Validate and complete a config before a runner is built from it.

    Checks every registry ``type``, the data roots and the weight files
    (resolving ``pretrain_pth/...`` paths), turns off ``pin_memory`` without
    a GPU, and sets up gloo DDP when launched distributed on CPUs.

    Args:
        cfg (Config | str): The config or its path.
        mode (str): ``'train'`` or ``'test'`` (test ignores ``load_from``,
            which its checkpoint argument replaces).

    Returns:
        Config: The same config, completed.
    """
    if isinstance(cfg, str):
        cfg = Config.fromfile(cfg)
    cfg.setdefault('default_scope', 'mmext')
    check_config_types(cfg)
    train = mode == 'train'
    # testing builds only the test loader, and the tested checkpoint
    # replaces every initial weight
    if train:
        check_data_roots(cfg)
    else:
        check_data_roots(cfg, keys=('test_dataloader', ))
    resolve_pretrained_paths(cfg, check_load_from=train, strict=train)
    if train and cfg.get('resume') and not cfg.get('load_from'):
        check_auto_resume(cfg.get('work_dir'))
    if not torch.cuda.is_available():
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            if cfg.get(key):
                cfg[key]['pin_memory'] = False
    setup_cpu_distributed(cfg, cfg.get('launcher', 'none'))
    return cfg
