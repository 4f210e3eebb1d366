# Copyright (c) mmext contributors. All rights reserved.
"""Unknown keyword arguments in a config, found before anything is built.

mmengine passes a config dict's keys to the class its ``type`` names, so a
misspelt key (``max_epoch``, ``lrr``, ``presett``) is a ``TypeError`` only
when that piece is built -- after the environment / config dump and, for
hooks or loops, after the model and data loaders. :func:`check_arguments`
compares every key with the signature of the class it is passed to
(``inspect.signature`` of ``__init__``), following ``**kwargs`` up the MRO
as long as each ``__init__`` only hands them to ``super().__init__``. A
``**kwargs`` whose destination cannot be read from the source makes the
class accept anything (no false alarms).

Untyped dicts the runner builds with a default class are checked too:
``train_cfg`` (``EpochBasedTrainLoop`` / ``IterBasedTrainLoop`` from
``by_epoch``, as ``Runner.build_train_loop`` does), ``val_cfg`` /
``test_cfg``, ``optim_wrapper`` (``OptimWrapper``), the data loaders
(``torch.utils.data.DataLoader`` plus the keys mmengine pops),
``log_processor``, ``randomness`` and ``auto_scale_lr``.
"""
import ast
import difflib
import functools
import inspect
import textwrap

from mmext import registry as R
from mmext.utils.config import format_config_path, iter_config

__all__ = ['SUBDICTS', 'accepted_arguments', 'check_arguments', 'resolve_type']

_ANY = None  # "accepts any keyword" (unresolvable **kwargs)

# keys a builder pops before calling the class, per registry
_BUILDER_KEYS = {
    'hook': {'priority'},
    'parameter scheduler': {'convert_to_iter_based'},
    'weight initializer': {'override'},
}
_DATALOADER_KEYS = {
    'dataset', 'sampler', 'batch_sampler', 'collate_fn', 'worker_init_fn',
    'num_batch_per_epoch', 'disable_subprocess_warning'
}
_OPTIM_WRAPPER_KEYS = {'type', 'optimizer', 'paramwise_cfg', 'constructor'}
#: class name -> {untyped sub-dict key: (module, callable it is passed to,
#: keys the class pops first)}
SUBDICTS = {
    'ViLBERT': {
        'text': ('mmext.models.multimodal.vilbert.text_stream', 'build_bert',
                 {'frozen_stages', 'frozen_patterns'}),
        'coattention':
        ('mmext.models.multimodal.vilbert.coattention', 'CoAttentionLayer',
         {'preset', 'text_ids', 'vision_ids'}),
    },
}


def _init_of(cls):
    """The ``__init__`` ``cls`` defines itself, or None."""
    return cls.__dict__.get('__init__')


def _kwargs_go_to_super(func, var_kw):
    """True when every use of ``**var_kw`` in ``func``'s body is a
    ``**var_kw`` argument of ``super().__init__`` (or ``super(C, self)``).
    False when the source cannot be read or it goes anywhere else."""
    try:
        source = textwrap.dedent(inspect.getsource(func))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return False
    to_super, uses = 0, 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == var_kw:
            uses += 1
        if isinstance(node, ast.Call) and _is_super_init(node.func):
            to_super += sum(1 for k in node.keywords
                            if k.arg is None and isinstance(k.value, ast.Name)
                            and k.value.id == var_kw)
    return uses > 0 and uses == to_super


def _is_super_init(func):
    return (isinstance(func, ast.Attribute) and func.attr == '__init__'
            and isinstance(func.value, ast.Call)
            and isinstance(func.value.func, ast.Name)
            and func.value.func.id == 'super')


def _signature_names(func):
    """``(names, var_kw)`` of a callable's keyword-passable parameters."""
    sig = inspect.signature(func)
    names, var_kw = set(), None
    for p in sig.parameters.values():
        if p.kind == p.VAR_KEYWORD:
            var_kw = p.name
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.add(p.name)
    return names, var_kw


@functools.lru_cache(maxsize=None)
def accepted_arguments(obj):
    """Keyword arguments ``obj(...)`` accepts, or None for "any".

    For a class, its ``__init__`` parameters; a ``**kwargs`` that the
    ``__init__`` passes on to ``super().__init__`` and nowhere else adds the
    parameters of the next ``__init__`` in the MRO, recursively (mmengine's
    ``BaseModule``, mmpretrain's backbones); any other ``**kwargs`` means
    "any keyword".
    """
    if not inspect.isclass(obj):
        try:
            names, var_kw = _signature_names(obj)
        except (TypeError, ValueError):
            return _ANY
        return _ANY if var_kw else frozenset(names)
    names = set()
    for i, cls in enumerate(obj.__mro__):
        init = _init_of(cls)
        if init is None:
            continue
        if cls is object:
            break
        init = inspect.unwrap(init)
        try:
            own, var_kw = _signature_names(init)
        except (TypeError, ValueError):
            return _ANY  # builtin / C extension __init__
        names |= own - {'self'}
        if var_kw is None:
            break
        if not _kwargs_go_to_super(init, var_kw):
            return _ANY
    return frozenset(names)


def resolve_type(registry, kind):
    """The class (or function) ``kind`` names in ``registry`` (parents
    and scopes included), or None."""
    if not isinstance(kind, str):
        return kind if callable(kind) else None
    try:
        return registry.get(kind)
    except Exception:
        return None


def _unknown(where, keys, accepted, owner):
    """One message per key of ``keys`` not in ``accepted``."""
    if accepted is _ANY:
        return []
    name = getattr(owner, '__qualname__', str(owner))
    module = getattr(owner, '__module__', '') or ''
    errors = []
    for key in keys:
        if key in accepted or not isinstance(key, str):
            continue
        close = difflib.get_close_matches(key, sorted(accepted), n=1)
        hint = (f"did you mean '{close[0]}'?" if close else
                f"it takes {', '.join(sorted(accepted)) or 'no arguments'}")
        errors.append(f'{format_config_path(where + (key, ))}: {name} '
                      f'({module.split(".")[0]}) has no argument {key!r}; '
                      f'{hint}')
    return errors


def _registry_of(path, top):
    """The registry a dict at ``path`` is built from (see prepare.py's
    tables: the nearest nested key, else the top-level key's)."""
    from .prepare import _NESTED
    return next((_NESTED[k] for k in reversed(path) if k in _NESTED), top)


def _typed_dicts(cfg):
    """``(path, dict, class, registry)`` for every dict with a ``type``
    some registry resolves, under the top-level keys prepare.py knows."""
    from .prepare import _TOP_LEVEL, _UNTYPED
    for top, registry in _TOP_LEVEL.items():
        node = cfg.get(top)
        if node is None:
            continue
        for path, _, _, value in iter_config(node):
            if not isinstance(value, dict) or 'type' not in value or any(
                    k in _UNTYPED for k in path):
                continue
            reg = _registry_of(path, registry)
            cls = resolve_type(reg, value['type'])
            if cls is not None:
                yield (top, ) + path, value, cls, reg


def _check_typed(cfg):
    errors = []
    for where, value, cls, reg in _typed_dicts(cfg):
        if where[0] == 'optim_wrapper' and len(where) == 1:
            continue  # its keys go through the constructor: see below
        extra = {'type', '_scope_'} | _BUILDER_KEYS.get(reg.name, set())
        if where[-1] == 'norm_cfg' or str(where[-1]).endswith('norm_cfg'):
            extra.add('requires_grad')  # popped by build_norm_layer
        if 'override' in where:
            extra.add('name')
        errors += _unknown(where, [k for k in value if k not in extra],
                           accepted_arguments(cls), cls)
        errors += _check_subdicts(where, value, cls)
    return errors


def _check_subdicts(where, value, cls):
    """Untyped dicts a class unpacks into a helper (:data:`SUBDICTS`)."""
    import importlib
    errors = []
    for key, (module, name,
              popped) in SUBDICTS.get(getattr(cls, '__name__', ''),
                                      {}).items():
        sub = value.get(key)
        if not isinstance(sub, dict):
            continue
        target = getattr(importlib.import_module(module), name)
        accepted = accepted_arguments(target)
        if accepted is not _ANY:
            accepted = accepted | popped
        errors += _unknown(where + (key, ), sub, accepted, target)
    return errors


def _loop_class(key, loop):
    from mmengine.runner import (EpochBasedTrainLoop, IterBasedTrainLoop,
                                 TestLoop, ValLoop)
    if 'type' in loop:
        return resolve_type(R.LOOPS, loop['type'])
    if key == 'train_cfg':
        if 'by_epoch' not in loop:
            return 'missing by_epoch'
        return EpochBasedTrainLoop if loop['by_epoch'] else IterBasedTrainLoop
    return ValLoop if key == 'val_cfg' else TestLoop


def _check_runner_level(cfg):
    """The untyped dicts the runner builds with a default class."""
    from mmengine.runner import LogProcessor, Runner
    from torch.utils.data import DataLoader
    errors = []
    for key in ('train_cfg', 'val_cfg', 'test_cfg'):
        loop = cfg.get(key)
        if not isinstance(loop, dict):
            continue
        cls = _loop_class(key, loop)
        if cls == 'missing by_epoch':
            errors.append(f"{key}: give type='EpochBasedTrainLoop' (or "
                          "another loop) or by_epoch=True/False")
        elif cls is not None:
            errors += _unknown(
                (key, ),
                [k for k in loop if k not in ('type', 'by_epoch', '_scope_')],
                accepted_arguments(cls), cls)
    loader_keys = accepted_arguments(DataLoader)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if isinstance(loader, dict) and 'type' not in loader:
            errors += _unknown((key, ), loader, loader_keys | _DATALOADER_KEYS,
                               DataLoader)
    errors += _check_optim_wrapper(cfg.get('optim_wrapper'))
    proc = cfg.get('log_processor')
    if isinstance(proc, dict) and 'type' not in proc:
        errors += _unknown(('log_processor', ), proc,
                           accepted_arguments(LogProcessor), LogProcessor)
    if isinstance(cfg.get('randomness'), dict):
        errors += _unknown(
            ('randomness', ), cfg['randomness'],
            accepted_arguments(Runner.set_randomness) - {'self'},
            Runner.set_randomness)
    if isinstance(cfg.get('auto_scale_lr'), dict):
        errors += _unknown(('auto_scale_lr', ), cfg['auto_scale_lr'],
                           {'enable', 'base_batch_size'}, Runner)
    return errors


def _check_optim_wrapper(wrapper):
    """``optim_wrapper`` keys: the constructor pops ``optimizer`` /
    ``paramwise_cfg`` / ``constructor`` and passes the rest to the wrapper
    class (mmengine's ``DefaultOptimWrapperConstructor.__call__``)."""
    from mmengine.optim import DefaultOptimWrapperConstructor
    if not isinstance(wrapper, dict):
        return []
    ctor = resolve_type(
        R.OPTIM_WRAPPER_CONSTRUCTORS,
        wrapper.get('constructor', 'DefaultOptimWrapperConstructor'))
    if not (inspect.isclass(ctor)
            and issubclass(ctor, DefaultOptimWrapperConstructor)):
        return []  # a constructor of its own: its keys are its business
    cls = resolve_type(R.OPTIM_WRAPPERS, wrapper.get('type', 'OptimWrapper'))
    if cls is None:
        return []
    accepted = accepted_arguments(cls)
    if accepted is not _ANY:
        accepted = accepted | _OPTIM_WRAPPER_KEYS
    return _unknown(('optim_wrapper', ),
                    [k for k in wrapper if k != '_scope_'], accepted, cls)


def check_arguments(cfg):
    """Every config key no constructor takes, as one-line messages.

    Args:
        cfg (Config | dict): The config (``default_scope`` decides which
            registry's class a bare type name is).

    Returns:
        list[str]: ``'<config path>: <Class> (<package>) has no argument
        '<key>'; did you mean '<name>'?'`` per unknown key.
    """
    return _check_typed(cfg) + _check_runner_level(cfg)
