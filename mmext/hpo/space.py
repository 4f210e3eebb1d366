# Copyright (c) mmext contributors. All rights reserved.
"""Search-space files: Optuna distributions over config keys.

A space file is a Python file that defines

- ``space``: ``{config key: optuna distribution}``, e.g.
  ``{'optim_wrapper.optimizer.lr': FloatDistribution(1e-4, 1e-1,
  log=True)}`` (the key is also the Optuna parameter name);
- optionally ``overrides(trial) -> {config key: value}`` for structured
  spaces (several parameters mapped to one config value, as ViLBERT's
  co-attention placement);
- optionally ``fixed``: overrides applied to every trial (e.g. a shorter
  schedule), and ``metric`` / ``direction`` defaults for ``tools/hpo.py``;
- optionally ``new_keys``: keys the config may lack because it leaves an
  argument at its default (e.g. ``model.coattention.drop``); their parent
  must exist.

Every other key must exist in the config: a key the config lacks would be
merged as a new field the model never reads (the thesis code's trials set
fields its model ignored). :func:`check_overrides` refuses such keys before
the study starts.
"""
import difflib
import os.path as osp
import runpy

from optuna.distributions import (BaseDistribution, CategoricalDistribution,
                                  FloatDistribution, IntDistribution)

from mmext.apis.prepare import ConfigError
from mmext.utils.config import format_config_path, iter_config

__all__ = [
    'SearchSpace', 'load_space', 'suggest', 'config_keys', 'get_key',
    'check_overrides'
]


def suggest(trial, name, dist):
    """``trial.suggest_*`` for one distribution."""
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(
            name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(
            name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    raise TypeError(f'{name}: unsupported distribution {dist!r}')


class SearchSpace:
    """A loaded space file.

    Args:
        space (dict[str, BaseDistribution]): Config key -> distribution.
        overrides (callable, optional): ``trial -> {key: value}``.
        fixed (dict, optional): Overrides for every trial.
        metric (str | list[str], optional): Default objective metric(s).
        direction (str | list[str], optional): Default direction(s).
        path (str, optional): Where it was loaded from.
        new_keys (Sequence[str]): Keys allowed to be absent from the config
            (their parent must exist).
    """

    def __init__(self,
                 space=None,
                 overrides=None,
                 fixed=None,
                 metric=None,
                 direction=None,
                 path=None,
                 new_keys=()):
        self.space = dict(space or {})
        self.overrides_fn = overrides
        self.fixed = dict(fixed or {})
        self.metric = metric
        self.direction = direction
        self.path = path
        self.new_keys = tuple(new_keys)
        where = path or 'search space'
        for key, dist in self.space.items():
            if not isinstance(dist, BaseDistribution):
                raise TypeError(
                    f'{where}: space[{key!r}] is {dist!r}, not an Optuna '
                    'distribution (use optuna.distributions.'
                    'FloatDistribution / IntDistribution / '
                    'CategoricalDistribution)')
        if not self.space and overrides is None:
            raise ValueError(f'{where}: defines neither `space` nor '
                             '`overrides(trial)`; nothing to search')

    def sample(self, trial):
        """Suggest every parameter; return the trial's config overrides."""
        out = dict(self.fixed)
        for key, dist in self.space.items():
            out[key] = suggest(trial, key, dist)
        if self.overrides_fn is not None:
            extra = self.overrides_fn(trial)
            if not isinstance(extra, dict):
                raise TypeError(f'{self.path}: overrides(trial) returned '
                                f'{type(extra).__name__}, not a dict')
            out.update(extra)
        return out


def load_space(path):
    """Load a space file (see the module docstring)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'search space file {path} not found')
    ns = runpy.run_path(path)
    return SearchSpace(
        ns.get('space'),
        ns.get('overrides'),
        ns.get('fixed'),
        ns.get('metric'),
        ns.get('direction'),
        path=path,
        new_keys=ns.get('new_keys', ()))


def _split(key):
    return [int(p) if p.isdigit() else p for p in key.split('.')]


def get_key(cfg, key):
    """Value at a dotted key (``a.b.0.c`` indexes lists); KeyError if the
    config lacks it."""
    node = getattr(cfg, '_cfg_dict', cfg)  # Config is not a dict
    for part in _split(key):
        if isinstance(part, int) and isinstance(node, (list, tuple)) \
                and part < len(node):
            node = node[part]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(key)
    return node


def config_keys(cfg, prefix=''):
    """Every dotted key of a config (lists indexed)."""
    for path, _, _, _ in iter_config(cfg):
        if path:
            yield prefix + format_config_path(path)


def check_overrides(cfg, overrides, where='search space', new_keys=()):
    """Raise :class:`ConfigError` for override keys the config lacks.

    Args:
        cfg (Config): The base config.
        overrides (dict): ``{dotted key: value}``.
        where (str): Named in the message (the space file).
        new_keys (Sequence[str]): Keys that may be absent if their parent
            exists.
    """
    errors = []
    known = None
    for key in overrides:
        try:
            get_key(cfg, key.rpartition('.')[0] if key in new_keys else key)
        except KeyError:
            if known is None:
                known = list(config_keys(getattr(cfg, '_cfg_dict', cfg)))
            close = difflib.get_close_matches(key, known, n=2)
            errors.append(
                f"{where}: '{key}' is not a key of the config, so a trial "
                'would set a field nothing reads' +
                (f'; did you mean {close}?' if close else
                 '; add it to the config (with its default) first'))
    if errors:
        raise ConfigError('\n'.join(errors))
