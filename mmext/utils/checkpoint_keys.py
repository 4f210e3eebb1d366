# Copyright (c) mmext contributors. All rights reserved.
"""A checkpoint must fit the model it is loaded into.

mmengine's ``load_checkpoint`` / ``Runner.load_checkpoint`` /
``init_cfg=dict(type='Pretrained')`` only *log* missing and unexpected keys
and size mismatches, so a checkpoint for another config leaves a model with
random weights that ``tools/test.py`` evaluates and exits 0; a list, a
tensor or a dict with non-string keys fails deep inside mmengine with a raw
traceback. :func:`install_key_checks` (run by
:func:`~mmext.utils.checkpoint.register_safe_checkpoint_loader`) wraps
mmengine's ``_load_checkpoint``, ``_load_checkpoint_to_model``,
``_load_checkpoint_with_prefix`` and ``load_state_dict`` (and the copies
``mmengine.runner.runner`` imported) so that every load path:

* refuses a checkpoint that is not a dict of name -> value (one line naming
  the file);
* requires at least ``MMEXT_CHECKPOINT_MIN_KEY_OVERLAP`` (default 0.5) of
  the keys the load targets -- the model's, or for a ``Pretrained`` init
  the module's own keys after the ``prefix`` is stripped -- to be in the
  checkpoint with the same shape (BatchNorm's ``num_batches_tracked`` are
  not counted); ``0`` switches the check off.
"""
import os
import re
from collections import OrderedDict

import torch
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner import checkpoint as mme_checkpoint

__all__ = [
    'ENV_MIN_KEY_OVERLAP', 'DEFAULT_MIN_KEY_OVERLAP', 'check_key_overlap',
    'state_dict_of', 'remember_source', 'install_key_checks'
]

ENV_MIN_KEY_OVERLAP = 'MMEXT_CHECKPOINT_MIN_KEY_OVERLAP'
DEFAULT_MIN_KEY_OVERLAP = 0.5
_SHOWN = 3  # keys of each side shown in a message

# id(loaded object) -> (file name, type, len): the loader's return value
# reaches _load_checkpoint_to_model without its file name
_SOURCES = OrderedDict()


def remember_source(obj, name):
    """Note that ``obj`` (just loaded) came from ``name``."""
    _SOURCES.pop(id(obj), None)
    _SOURCES[id(obj)] = (name, type(obj))
    while len(_SOURCES) > 32:
        _SOURCES.popitem(last=False)


def _source(obj, default='checkpoint'):
    # hooks may edit the dict between loading and loading into the model
    name, kind = _SOURCES.get(id(obj), (default, None))
    return name if kind is type(obj) else default


def min_key_overlap():
    """The fraction from ``MMEXT_CHECKPOINT_MIN_KEY_OVERLAP`` (default 0.5)."""
    value = os.environ.get(ENV_MIN_KEY_OVERLAP, DEFAULT_MIN_KEY_OVERLAP)
    try:
        fraction = float(value)
    except ValueError:
        fraction = -1.0
    if not 0 <= fraction <= 1:
        raise ValueError(f'{ENV_MIN_KEY_OVERLAP}={value!r} is not a fraction '
                         'from 0 to 1 (0 switches the check off)')
    return fraction


def state_dict_of(checkpoint, name):
    """The state dict in ``checkpoint`` (``['state_dict']`` or itself).

    Raises:
        CheckpointMismatchError: It is not a dict with string keys.
    """
    from .checkpoint import CheckpointMismatchError
    fix = ('save the weights with torch.save(model.state_dict(), path) or '
           'use a checkpoint written by mmengine')
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(
            f'{name} holds a {type(checkpoint).__name__}, not a state dict '
            f'(a dict of parameter name -> tensor): {fix}')
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict):
        raise CheckpointMismatchError(
            f"{name}: its 'state_dict' is a {type(state).__name__}, not a "
            f'dict of parameter name -> tensor: {fix}')
    bad = next((k for k in state if not isinstance(k, str)), None)
    if bad is not None:
        raise CheckpointMismatchError(
            f'{name} has a state-dict key {bad!r:.40} of type '
            f'{type(bad).__name__}; parameter names are strings: {fix}')
    return state


def _unwrap(model):
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def check_key_overlap(model, state, name, what='model'):
    """Raise unless ``state`` holds enough of ``model``'s keys.

    A key counts when the checkpoint has a tensor of the model's shape under
    it. Partial loads are normal (a new head, a backbone from a classifier);
    a checkpoint sharing less than :func:`min_key_overlap` of the target's
    keys is for another model.

    Raises:
        CheckpointMismatchError: Too few keys shared; names both sides'
            first unmatched keys.
    """
    from .checkpoint import CheckpointMismatchError
    threshold = min_key_overlap()
    target = {
        k: v
        for k, v in _unwrap(model).state_dict().items()
        if not k.endswith('num_batches_tracked')
    }
    if threshold == 0 or not target:
        return
    shared, reshaped = [], []
    for key, value in target.items():
        found = state.get(key)
        if isinstance(found, torch.Tensor) and found.shape == value.shape:
            shared.append(key)
        elif found is not None:
            reshaped.append(key)
    if len(shared) >= threshold * len(target):
        return
    missing = [k for k in target if k not in state][:_SHOWN]
    extra = [k for k in state if k not in target][:_SHOWN]
    note = ''
    if reshaped:
        key = reshaped[0]
        note = (f'; {len(reshaped)} more match by name only, e.g. {key!r} '
                f'{_shape(state[key])} vs {tuple(target[key].shape)}')
    raise CheckpointMismatchError(
        f'{name} shares {len(shared)} of {len(target)} {what} keys '
        f'(checkpoint: {_keys(extra, state)}; {what}: '
        f'{_keys(missing, target)}{note}): is this the right checkpoint for '
        f'this config? (at least {threshold:g} of the keys must match in '
        f'name and shape; {ENV_MIN_KEY_OVERLAP} sets the fraction)')


def _keys(keys, everything):
    shown = ', '.join(repr(k) for k in keys) or 'no other keys'
    return shown + ('...' if len(everything) > len(keys) else '')


def _shape(value):
    return tuple(value.shape) if hasattr(value,
                                         'shape') else type(value).__name__


def _revised(state, revise_keys):
    keys = list(state)
    for pattern, replacement in revise_keys:
        keys = [re.sub(pattern, replacement, k) for k in keys]
    return dict(zip(keys, state.values()))


# --------------------------------------------------------------------------
# mmengine's load paths

_PREFIX_LOADS = {}  # id(state dict built for a Pretrained prefix) -> name


def _checked_load_to_model(load_to_model):

    def wrapper(model,
                checkpoint,
                strict=False,
                logger=None,
                revise_keys=[(r'^module\.', '')]):  # noqa: B006 (mmengine's)
        name = _source(checkpoint)
        state = state_dict_of(checkpoint, name)
        check_key_overlap(model, _revised(state, revise_keys), name)
        return load_to_model(model, checkpoint, strict, logger, revise_keys)

    wrapper._mmext_checked = True
    return wrapper


def _load_with_prefix(prefix, filename, map_location=None):
    """mmengine's ``_load_checkpoint_with_prefix`` with one-line errors."""
    from .checkpoint import CheckpointMismatchError
    checkpoint = mme_checkpoint._load_checkpoint(
        filename, map_location=map_location)
    state = state_dict_of(checkpoint, filename)
    prefix = prefix if prefix.endswith('.') else prefix + '.'
    stripped = {
        k[len(prefix):]: v
        for k, v in state.items() if k.startswith(prefix)
    }
    if not stripped:
        raise CheckpointMismatchError(
            f'{filename} has no key starting with {prefix!r} (its keys: '
            f'{_keys(list(state)[:_SHOWN], state)}): fix the prefix of '
            "init_cfg=dict(type='Pretrained')")
    _PREFIX_LOADS.clear()  # only the latest one is about to be loaded
    _PREFIX_LOADS[id(stripped)] = (filename, prefix)
    return stripped


_load_with_prefix._mmext_checked = True


def _checked_load(load):

    def wrapper(filename, map_location=None, logger=None):
        checkpoint = load(filename, map_location, logger)
        state_dict_of(checkpoint, filename)  # every caller needs a dict
        remember_source(checkpoint, filename)
        return checkpoint

    wrapper._mmext_checked = True
    return wrapper


def _checked_load_state_dict(load_state_dict):

    def wrapper(module, state_dict, strict=False, logger=None):
        source = _PREFIX_LOADS.pop(id(state_dict), None)
        if source is not None:
            check_key_overlap(module, state_dict, source[0],
                              f'module (prefix {source[1]!r})')
        return load_state_dict(module, state_dict, strict, logger)

    wrapper._mmext_checked = True
    return wrapper


def install_key_checks():
    """Wrap mmengine's functions that put a checkpoint into a model (also
    the copies ``mmengine.runner.runner`` imported). Idempotent."""
    from mmengine.runner import runner as mme_runner
    for module in (mme_checkpoint, mme_runner):
        for name, wrap in (('_load_checkpoint', _checked_load),
                           ('_load_checkpoint_to_model',
                            _checked_load_to_model)):
            original = getattr(module, name, None)
            if original is not None and not hasattr(original,
                                                    '_mmext_checked'):
                setattr(module, name, wrap(original))
    if not hasattr(mme_checkpoint.load_state_dict, '_mmext_checked'):
        mme_checkpoint.load_state_dict = _checked_load_state_dict(
            mme_checkpoint.load_state_dict)
    mme_checkpoint._load_checkpoint_with_prefix = _load_with_prefix
