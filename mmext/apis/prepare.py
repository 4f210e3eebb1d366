# Copyright (c) mmext contributors. All rights reserved.
"""The pre-run check: a broken config fails before anything runs.

mmengine finds an unknown ``type``, a misspelt keyword, a missing data root,
weight file, BERT folder or checkpoint only when it builds that piece, which
can be after the environment / config dump and minutes of work (or, for
``init_cfg``, after the first epoch's data loading started).
:func:`prepare_config` finds all of them at once, up front, and raises one
error listing every problem, one line each.
"""
import difflib
import os.path as osp

import torch
from mmengine.config import Config

from mmext import registry as R
from mmext.utils import (register_all_modules, resolve_pretrained_paths,
                         setup_cpu_distributed)
from mmext.utils.config import ConfigError, format_config_path, iter_config
from mmext.utils.fileio import InputFileError
from .prerun import (check_bert_folders, check_checkpoint_file,
                     check_monitored_metrics)
from .signature_check import check_arguments

__all__ = [
    'ConfigError', 'check_config_types', 'check_data_roots',
    'check_auto_resume', 'prepare_config', 'config_problems'
]

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
    'tokenizer': R.TOKENIZER,
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
    """Raise FileNotFoundError naming each missing ``data_root`` of the
    dataloaders in ``keys`` (one line per root, with the data set's
    expected layout)."""
    missing = {}  # root -> (loader keys, data set type)
    for key in keys:
        loader = cfg.get(key)
        if not loader:
            continue
        dataset = loader.get('dataset', {})
        while isinstance(dataset, dict) and 'dataset' in dataset:
            dataset = dataset['dataset']  # dataset wrappers
        root = dataset.get('data_root') if isinstance(dataset, dict) else None
        if root and not osp.isdir(root):
            missing.setdefault(root, ([], dataset.get('type')))[0].append(key)
    errors = []
    for root, (loaders, t) in missing.items():
        cls = R.DATASETS.get(t) if isinstance(t, str) else t
        layout = _one_line_layout(getattr(cls, 'LAYOUT', None))
        errors.append(f'{" / ".join(loaders)}: data_root {root!r} of {t} '
                      f'does not exist; expected layout: {layout}')
    if errors:
        raise FileNotFoundError('\n'.join(errors))


def _one_line_layout(layout):
    """A data set's ``LAYOUT`` tree as one line: the root, then each entry
    without its tree-drawing prefix, joined by '; '."""
    lines = [ln.strip() for ln in (layout or '').strip().splitlines()]
    if not lines:
        return 'see data/README.md'
    entries = [ln.lstrip('├└│─ ').strip() for ln in lines[1:]]
    entries = [e for e in entries if e]
    return lines[0] + (': ' + '; '.join(entries) if entries else '')


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


def _collect(problems, check, *args, **kwargs):
    """Run ``check``; keep what it raises (or the messages it returns)."""
    try:
        found = check(*args, **kwargs)
    except (ConfigError, FileNotFoundError, InputFileError) as e:
        problems.append(e)
        return
    if isinstance(found, list):  # message checks (others return cfg)
        problems += [ConfigError(m) for m in found if m]


def config_problems(cfg, mode='train', checkpoint=None):
    """Every problem the pre-run check finds, as exceptions (see
    :func:`prepare_config`); ``cfg`` gets its weight paths resolved."""
    problems = []
    test_keys = ('test_dataloader', ) if mode == 'test' else ()
    _collect(problems, check_config_types, cfg)
    _collect(problems, check_arguments, cfg)
    if checkpoint is not None:
        what = 'checkpoint' if mode != 'train' else '--resume checkpoint'
        _collect(problems, lambda: [check_checkpoint_file(checkpoint, what)])
    train = mode == 'train'
    if train:
        _collect(problems, check_data_roots, cfg)
    elif test_keys:
        _collect(problems, check_data_roots, cfg, keys=test_keys)
    # testing / inference: the checkpoint replaces every initial weight
    _collect(
        problems,
        resolve_pretrained_paths,
        cfg,
        check_load_from=train and checkpoint is None,
        strict=train)
    loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader') \
        if train else test_keys
    _collect(problems, check_bert_folders, cfg, keys=('model', ) + loaders)
    if train:
        _collect(problems, check_monitored_metrics, cfg)
        if cfg.get('resume') and not cfg.get('load_from'):
            _collect(problems, check_auto_resume, cfg.get('work_dir'))
    return problems


def prepare_config(cfg, mode='train', checkpoint=None):
    """The pre-run check: validate and complete a config before a runner
    (or log, or data loading) is built from it.

    Checks every registry ``type`` and every keyword against the signature
    of the class it is passed to (:mod:`mmext.apis.signature_check`), the
    data roots, the weight files (resolving ``pretrain_pth/...`` paths),
    the BERT folders, the checkpoint given on the command line and the
    metric keys hooks / schedulers monitor (:mod:`mmext.apis.prerun`); turns
    off ``pin_memory`` without a GPU, and sets up gloo DDP when launched
    distributed on CPUs.

    Args:
        cfg (Config | str): The config or its path.
        mode (str): ``'train'``, ``'test'`` or ``'infer'``. Testing ignores
            ``load_from`` and initial weights (its checkpoint replaces
            them) and checks only the test loader; inference checks no data.
        checkpoint (str, optional): A checkpoint named on the command line
            (``tools/test.py CHECKPOINT``, ``--resume PATH``,
            ``tools/infer.py``): it must be a regular file.

    Returns:
        Config: The same config, completed.

    Raises:
        ConfigError: Several problems, one line each. A single problem is
            raised as found (``ConfigError``, ``FileNotFoundError`` such as
            :class:`~mmext.utils.paths.MissingPretrainedError`, or
            :class:`~mmext.utils.fileio.InputFileError`).
    """
    if isinstance(cfg, str):
        cfg = Config.fromfile(cfg)
    cfg.setdefault('default_scope', 'mmext')
    problems = config_problems(cfg, mode, checkpoint)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigError('\n'.join(str(e) for e in problems))
    if not torch.cuda.is_available():
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            if cfg.get(key):
                cfg[key]['pin_memory'] = False
    setup_cpu_distributed(cfg, cfg.get('launcher', 'none'))
    return cfg
