# Copyright (c) mmext contributors. All rights reserved.
"""The file and metric checks of the pre-run check (:func:`prepare_config`).

mmengine finds these only when it gets there: a BERT folder when the model
is built (after the environment / config dump), a missing ``tools/test.py``
checkpoint when the runner loads it, and a ``save_best`` / ``monitor`` key
the evaluator never gives after the first validation (CheckpointHook's
``KeyError``; ``EarlyStoppingHook`` only warns and never stops). Each check
returns one-line messages; :func:`mmext.apis.prepare_config` collects them.
"""
import inspect
import os.path as osp

from mmext.utils.config import ConfigError, format_config_path, iter_config
from mmext.utils.fileio import InputFileError, check_regular_file

__all__ = [
    'HF_FOLDER_KEYS', 'check_bert_folders', 'check_checkpoint_file',
    'monitored_metrics', 'check_monitored_metrics'
]

_BERT_FILES = 'config.json, vocab.txt and model.safetensors or ' \
    'pytorch_model.bin'

#: class name -> (key path inside its dict that names a Hugging Face BERT
#: folder, files it reads from the folder)
HF_FOLDER_KEYS = {
    # ViLBERT's text stream: build_bert(folder=..., load_weights=True)
    'ViLBERT': (('text', 'folder'), ('config.json', 'weights')),
    # the caption tokenizer: build_bert_tokenizer(bert)
    'TokenizeCaption': (('bert', ), ('config.json', 'vocab.txt')),
    # the same tokenizer given as tokenizer=dict(type=..., folder=...)
    'BertTokenizerFromFolder': (('folder', ), ('config.json', 'vocab.txt')),
}


def _class_name(kind):
    name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
    return str(name).rpartition('.')[2]


def _folder_problem(folder, needs):
    """What is missing from a BERT folder (None when it is complete)."""
    from mmext.models.multimodal.vilbert.text_stream import (BERT_HOWTO,
                                                             find_bert_folder)
    try:
        found = find_bert_folder(folder)
    except FileNotFoundError as e:
        return f'{str(e).split("; ")[0]} (a BERT folder holds ' \
            f'{_BERT_FILES}); {BERT_HOWTO}'
    missing = []
    if 'vocab.txt' in needs and not osp.isfile(osp.join(found, 'vocab.txt')):
        missing.append('vocab.txt')
    if 'weights' in needs and not any(
            osp.isfile(osp.join(found, f))
            for f in ('model.safetensors', 'pytorch_model.bin')):
        missing.append('model.safetensors (or pytorch_model.bin)')
    if missing:
        return (f'BERT folder {found} has no {" or ".join(missing)} (a BERT '
                f'folder holds {_BERT_FILES}); {BERT_HOWTO}')
    return None


def check_bert_folders(cfg,
                       keys=('model', 'train_dataloader', 'val_dataloader',
                             'test_dataloader')):
    """One message per Hugging Face folder (:data:`HF_FOLDER_KEYS`) that
    is missing or lacks a file a reader of it needs (named at the first
    config key that gives it)."""
    folders = {}  # folder -> [first config path, files needed]
    for top in keys:
        node = cfg.get(top)
        if node is None:
            continue
        for path, _, _, value in iter_config(node):
            if not isinstance(value, dict) or 'type' not in value:
                continue
            entry = HF_FOLDER_KEYS.get(_class_name(value['type']))
            if entry is None:
                continue
            (*parents, leaf), needs = entry
            holder = value
            for k in parents:
                holder = holder.get(k) if isinstance(holder, dict) else None
            if not isinstance(holder, dict) or not isinstance(
                    holder.get(leaf), str):
                continue
            if holder.get('load_weights') is False:
                needs = tuple(n for n in needs if n != 'weights')
            where = format_config_path((top, ) + path + tuple(entry[0]))
            folders.setdefault(holder[leaf], [where, set()])[1].update(needs)
    errors = []
    for folder, (where, needs) in folders.items():
        problem = _folder_problem(folder, needs)
        if problem:
            errors.append(f'{where}: {problem}')
    return errors


def check_checkpoint_file(path, what='checkpoint'):
    """A message unless ``path`` (given on the command line) is an
    existing regular file; URLs are left to the loader."""
    if not path or '://' in str(path):
        return None
    try:
        check_regular_file(path, what)
    except FileNotFoundError:
        return (f'{what} {path} does not exist: check the path (a training '
                'run writes work_dirs/<config>/epoch_N.pth)')
    except InputFileError as e:
        return str(e)
    return None


def _hook_list(cfg):
    hooks = []
    for name, hook in (cfg.get('default_hooks') or {}).items():
        if isinstance(hook, dict):
            hooks.append((('default_hooks', name), hook))
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        if isinstance(hook, dict):
            hooks.append((('custom_hooks', i), hook))
    return hooks


def _default_monitor(kind):
    """The ``monitor`` default of a scheduler class: the first
    ``__init__`` in its MRO that has one (mixins take ``**kwargs``)."""
    from mmext import registry as R
    from .signature_check import resolve_type
    cls = resolve_type(R.PARAM_SCHEDULERS, kind)
    for klass in getattr(cls, '__mro__', ()):
        try:
            param = inspect.signature(
                klass.__dict__['__init__']).parameters.get('monitor')
        except (KeyError, TypeError, ValueError):
            continue
        if param is not None:
            return param.default if isinstance(param.default, str) else None
    return None


def monitored_metrics(cfg):
    """``(config path, metric key)`` for every validation metric a hook or
    scheduler reads: ``CheckpointHook.save_best`` (not ``'auto'``),
    ``EarlyStoppingHook.monitor`` and a plateau scheduler's ``monitor``
    (its default ``'loss'`` too: mmengine raises on a missing key)."""
    found = []
    for where, hook in _hook_list(cfg):
        kind = _class_name(hook.get('type'))
        if kind == 'CheckpointHook' and hook.get('save_best'):
            best = hook['save_best']
            for key in [best] if isinstance(best, str) else list(best):
                if key != 'auto':
                    found.append((where + ('save_best', ), key))
        elif kind == 'EarlyStoppingHook' and hook.get('monitor'):
            found.append((where + ('monitor', ), hook['monitor']))
    scheds = cfg.get('param_scheduler') or []
    scheds = [scheds] if isinstance(scheds, dict) else scheds
    for i, sched in enumerate(scheds):
        if isinstance(sched, dict) and 'Plateau' in _class_name(
                sched.get('type')):
            key = sched.get('monitor', _default_monitor(sched['type']))
            if key:
                found.append((('param_scheduler', i, 'monitor'), key))
    return found


def check_monitored_metrics(cfg):
    """One message per monitored key (:func:`monitored_metrics`) that the
    ``val_evaluator`` does not give (keys from
    :func:`mmext.evaluation.metric_keys.validation_keys`). Nothing is
    checked without validation (``--no-validate``)."""
    import fnmatch

    from mmext.evaluation.metric_keys import close_keys, validation_keys
    monitored = monitored_metrics(cfg)
    if not monitored or any(
            cfg.get(k) is None
            for k in ('val_evaluator', 'val_dataloader', 'val_cfg')):
        return []
    try:
        keys = validation_keys(cfg)
    except ConfigError as e:
        return [str(e)]
    errors = []
    for where, key in monitored:
        if any(fnmatch.fnmatchcase(key, k) for k in keys):
            continue
        errors.append(f'{format_config_path(where)}: {key!r} is not a '
                      f'validation metric; {close_keys(key, keys)}')
    return errors
