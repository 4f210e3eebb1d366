# Copyright (c) mmext contributors. All rights reserved.
"""Relative pretrained-weight paths that work from any clone.

Configs name weights as ``pretrain_pth/<file>`` (and stage-2 runs name their
stage-1 checkpoint as ``work_dirs/<run>/<file>``). mmengine resolves such a
path against the current directory only, and fails deep inside
``init_weights``; :func:`resolve_pretrained_paths` resolves every one before
the runner is built and fails with the file name and the command that makes
it.
"""
import os
import os.path as osp
from pathlib import Path

from .config import format_config_path, iter_config
from .pretrained_sources import PRETRAINED_SOURCES

__all__ = [
    'PRETRAINED_SOURCES', 'project_root', 'find_pretrained',
    'resolve_pretrained_paths', 'MissingPretrainedError'
]


class MissingPretrainedError(FileNotFoundError):
    """A weight file a config names is not found in any search location."""


def project_root():
    """The folder that holds ``mmext/`` (the clone, or site-packages)."""
    return Path(__file__).resolve().parents[2]


def _search_dirs():
    dirs = [Path.cwd(), project_root()]
    env = os.environ.get('MMEXT_PRETRAIN_DIR')
    if env:
        dirs.append(Path(env))
    return dirs


def find_pretrained(path):
    """Resolve ``path``: as given if absolute, else against the current
    directory, the project root, then ``$MMEXT_PRETRAIN_DIR`` (where the
    leading ``pretrain_pth/`` is dropped). Returns None when not found."""
    if '://' in str(path):
        return str(path)  # a URL or other mmengine scheme: not ours to check
    p = Path(path).expanduser()
    if p.is_absolute():
        return str(p) if p.is_file() else None
    candidates = []
    for d in _search_dirs():
        candidates.append(d / p)
        if p.parts and p.parts[0] == 'pretrain_pth':
            candidates.append(d / Path(*p.parts[1:]))
    for c in candidates:
        if c.is_file():
            return str(c)
    return None


def _how_to_get(path):
    name = osp.basename(str(path))
    if name in PRETRAINED_SOURCES:
        return PRETRAINED_SOURCES[name]
    if str(path).startswith('work_dirs/'):
        return 'train the stage that writes it first (see the config header)'
    return 'see pretrain_pth/README.md'


def _is_weight_ref(key, value, parent):
    if value.startswith('pretrain_pth/'):
        return True
    if key == 'load_from':
        return True
    return (key == 'checkpoint' and isinstance(parent, dict)
            and parent.get('type') == 'Pretrained')


def resolve_pretrained_paths(cfg, check_load_from=True, strict=True):
    """Rewrite every weight path in ``cfg`` to an existing absolute path.

    Args:
        cfg (mmengine.Config | dict): The config, changed in place.
        check_load_from (bool): Also resolve ``cfg.load_from``. ``test.py``
            passes False because its checkpoint argument replaces it.
        strict (bool): Raise for missing files. ``test.py`` passes False:
            the tested checkpoint replaces every initial weight, so a missing
            ``init_cfg`` file does not matter there.

    Raises:
        MissingPretrainedError: One line per missing file, each with where it
            was searched and the command that produces it.
    """
    found = [(parent, key, format_config_path(path))
             for path, parent, key, value in iter_config(
                 getattr(cfg, '_cfg_dict', cfg))
             if isinstance(value, str) and not isinstance(parent, tuple)
             and _is_weight_ref(key, value, parent)]
    missing = []
    for container, key, where in found:
        value = container[key]
        if key == 'load_from' and not check_load_from:
            continue
        resolved = find_pretrained(value)
        if resolved is None:
            missing.append(f'{where} = {value!r} not found in '
                           f'{", ".join(str(d) for d in _search_dirs())}; '
                           f'to get it: {_how_to_get(value)}')
        else:
            container[key] = resolved
    if missing and strict:
        raise MissingPretrainedError('\n'.join(missing))
    return cfg
