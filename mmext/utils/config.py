# Copyright (c) mmext contributors. All rights reserved.
"""The one walk over a config tree (nested dicts, lists and tuples).

The config checks (:func:`mmext.apis.check_config_types`), the weight-path
resolution (:func:`mmext.utils.resolve_pretrained_paths`), the HPO key
check, the tokenizer-vocabulary restore and the test helpers all visit every
entry of a config; mmengine's ``Config`` offers no such traversal.
"""

__all__ = ['iter_config', 'walk_config', 'format_config_path', 'ConfigError']


class ConfigError(ValueError):
    """A config names something that cannot be built (raised by the
    pre-run checks of :mod:`mmext.apis.prepare` and the metric-key check of
    :mod:`mmext.evaluation.metric_keys`)."""


def iter_config(node):
    """Every entry of a config tree, depth first, each parent before its
    children.

    Each container's entries are read when the walk reaches them, so a
    caller may change a yielded dict (``d['init_cfg'] = None``) or replace
    ``parent[key]`` before the walk goes on below it.

    Args:
        node (dict | list | tuple): The tree (``cfg._cfg_dict`` for a
            ``Config``).

    Yields:
        tuple: ``(path, parent, key, value)`` with ``parent[key] is value``
        and ``path`` the tuple of dict keys and list indices from ``node``;
        ``node`` itself comes first as ``((), None, None, node)``.
    """
    yield (), None, None, node
    yield from _entries(node, ())


def _entries(node, path):
    if isinstance(node, dict):
        keys = list(node)
    elif isinstance(node, (list, tuple)):
        keys = range(len(node))
    else:
        return
    for key in keys:
        if not _has(node, key):
            continue  # removed by the caller meanwhile
        here = path + (key, )
        yield here, node, key, node[key]
        if _has(node, key):  # read again: the caller may have replaced it
            yield from _entries(node[key], here)


def _has(node, key):
    return key in node if isinstance(node, dict) else key < len(node)


def walk_config(node, fn):
    """Call ``fn(d)`` on every dict inside a config (depth first, ``node``
    itself included)."""
    for _, _, _, value in iter_config(node):
        if isinstance(value, dict):
            fn(value)


def format_config_path(path):
    """``('model', 'init_cfg', 0)`` -> ``'model.init_cfg.0'`` (the key
    syntax of ``--cfg-options``)."""
    return '.'.join(str(k) for k in path)
