# Copyright (c) mmext contributors. All rights reserved.
"""Search-space files: Optuna distributions over config keys.

A space file is a Python file that defines

- ``space``: ``{config key: optuna distribution}``, e.g.
  ``{'optim_wrapper.optimizer.lr': FloatDistribution(1e-4, 1e-1,
  log=True)}`` (the key is also the Optuna parameter name);
- optionally ``overrides(trial) -> {config key: value}`` for structured
  spaces (several parameters mapped to one config value, as ViLBERT's
  co-attention placement); ``overrides(trial, cfg)`` also gets the base
  config (a copy), so one file can serve configs of different structure
  (``model.coattention`` of a pre-training config, ``model.vilbert.
  coattention`` of a classifier) or scale a config's own schedule;
- optionally ``fixed``: overrides applied to every trial (e.g. a shorter
  schedule), and ``metric`` / ``direction`` defaults for ``tools/hpo.py``;
- optionally ``new_keys``: keys the config may lack because it leaves an
  argument at its default (e.g. ``model.coattention.drop``); their parent
  must exist;
- optionally ``configs``: ``{config file: metric}`` the space is written
  for (``None``: its ``metric``). ``tools/hpo.py`` takes the metric of the
  entry whose file name matches the config when ``--metric`` is not given,
  and ``tests/test_hpo/test_shipped_spaces.py`` checks every shipped space
  against every config it lists.

Every other key must exist in the config: a key the config lacks would be
merged as a new field the model never reads (the thesis code's trials set
fields its model ignored). :func:`check_overrides` refuses such keys before
the study starts.

A space file that cannot be used raises :class:`SpaceError`, one line naming
the file: a syntax error or an exception while it runs (with its line), a
wrong type (``space`` given as a list, a value that is no Optuna
distribution, ``new_keys`` as one string, ...), a key that is no dotted
config key. An ``overrides(trial)`` that raises names the trial, the file
and the exception; ``tools/hpo.py`` records that trial FAIL with this
reason and goes on.
"""
import copy
import difflib
import inspect
import os.path as osp
import re

from optuna import TrialPruned
from optuna.distributions import (CategoricalDistribution, FloatDistribution,
                                  IntDistribution)

from mmext.apis.prepare import ConfigError
from mmext.utils.config import format_config_path, iter_config
from mmext.utils.fileio import read_text_file

__all__ = [
    'SearchSpace', 'SpaceError', 'load_space', 'suggest', 'config_keys',
    'get_key', 'check_overrides'
]

MAX_SPACE_BYTES = 1 << 20
_DISTRIBUTIONS = (FloatDistribution, IntDistribution, CategoricalDistribution)
_KEY = re.compile(r'[^.\s]+(\.[^.\s]+)*')


class SpaceError(ConfigError):
    """A search-space file cannot be used: the message is one line naming
    the file (and line, key or trial), the cause and the fix."""


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


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def _check_key(where, what, key):
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise SpaceError(f'{where}: {what} key {_short(key)} is not a dotted '
                         "config key such as 'optim_wrapper.optimizer.lr'")


def _check_names(where, name, value, allowed=None):
    """``value`` is a str or a list/tuple of str (``allowed`` if given)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items or not all(
            isinstance(v, str) for v in items):
        raise SpaceError(f'{where}: `{name}` is {_short(value)}; give a '
                         'string or a list of strings')
    bad = [v for v in items if allowed and v not in allowed]
    if bad:
        raise SpaceError(f'{where}: `{name}` {bad[0]!r} is not one of '
                         f'{list(allowed)}')


class SearchSpace:
    """A loaded space file, its types checked.

    Args:
        space (dict[str, BaseDistribution]): Config key -> distribution.
        overrides (callable, optional): ``trial -> {key: value}``.
        fixed (dict, optional): Overrides for every trial.
        metric (str | list[str], optional): Default objective metric(s).
        direction (str | list[str], optional): Default direction(s).
        path (str, optional): Where it was loaded from.
        new_keys (Sequence[str]): Keys allowed to be absent from the config
            (their parent must exist).
        configs (dict[str, str | None], optional): Config files the space is
            written for -> their metric (None: ``metric``).

    Raises:
        SpaceError: A wrong type (``space`` given as a list, a value that
            is no Float/Int/CategoricalDistribution, a ``new_keys`` string
            ...), named with the file and the key.
    """

    def __init__(self,
                 space=None,
                 overrides=None,
                 fixed=None,
                 metric=None,
                 direction=None,
                 path=None,
                 new_keys=(),
                 configs=None):
        where = path or 'search space'
        for name, value in (('space', space), ('fixed', fixed)):
            if value is not None and not isinstance(value, dict):
                raise SpaceError(
                    f'{where}: `{name}` is a {type(value).__name__}, not a '
                    f'dict; write {name} = {{config key: ...}}, e.g. '
                    "{'optim_wrapper.optimizer.lr': ...}")
        if overrides is not None and not callable(overrides):
            raise SpaceError(f'{where}: `overrides` is '
                             f'{_short(overrides)}, not a function '
                             '`def overrides(trial): return {key: value}`')
        for name, value, allowed in (('metric', metric, None),
                                     ('direction', direction, ('maximize',
                                                               'minimize'))):
            if value is not None:
                _check_names(where, name, value, allowed)
        if isinstance(new_keys, str) or not isinstance(new_keys,
                                                       (list, tuple)):
            raise SpaceError(f'{where}: `new_keys` is {_short(new_keys)}; '
                             'give a list of config keys')
        for key in new_keys:
            _check_key(where, 'new_keys', key)
        self.configs = _check_configs(where, configs)
        self.space = dict(space or {})
        self.overrides_fn = overrides
        self.wants_cfg = _takes_two(overrides)
        self.fixed = dict(fixed or {})
        self.metric = metric
        self.direction = direction
        self.path = path
        self.new_keys = tuple(new_keys)
        for key in self.fixed:
            _check_key(where, 'fixed', key)
        for key, dist in self.space.items():
            _check_key(where, 'space', key)
            if not isinstance(dist, _DISTRIBUTIONS):
                raise SpaceError(
                    f'{where}: space[{key!r}] is {_short(dist)}, not an '
                    'Optuna distribution (use optuna.distributions.'
                    'FloatDistribution / IntDistribution / '
                    'CategoricalDistribution)')
        if not self.space and overrides is None:
            raise SpaceError(f'{where}: defines neither `space` nor '
                             '`overrides(trial)`; nothing to search')

    def metric_for(self, config):
        """The metric of the ``configs`` entry whose file name is
        ``config``'s, else ``metric``."""
        name = osp.basename(str(config))
        for path, metric in self.configs.items():
            if osp.basename(path) == name and metric is not None:
                return metric
        return self.metric

    def sample(self, trial, cfg=None):
        """Suggest every parameter; return the trial's config overrides.

        Args:
            trial (optuna.Trial): The trial.
            cfg (Config, optional): The base config, for an
                ``overrides(trial, cfg)`` (it gets a copy).

        Raises:
            SpaceError: ``overrides(trial)`` raised or returned no dict;
                the message names the trial, the file and the exception.
        """
        out = dict(self.fixed)
        for key, dist in self.space.items():
            out[key] = suggest(trial, key, dist)
        if self.overrides_fn is None:
            return out
        where = self.path or 'search space'
        if self.wants_cfg and cfg is None:
            raise SpaceError(f'{where}: overrides(trial, cfg) needs the '
                             'config; pass it to SearchSpace.sample')
        args = (trial, copy.deepcopy(cfg)) if self.wants_cfg else (trial, )
        try:
            extra = self.overrides_fn(*args)
        except TrialPruned:
            raise
        except Exception as exc:
            raise SpaceError(
                f'{where}: overrides(trial {trial.number}) raised '
                f'{type(exc).__name__}: {exc}'.splitlines()[0]) from exc
        if not isinstance(extra, dict):
            raise SpaceError(f'{where}: overrides(trial {trial.number}) '
                             f'returned {type(extra).__name__}, not a dict '
                             '{config key: value}')
        for key in extra:
            _check_key(where, f'overrides(trial {trial.number})', key)
        out.update(extra)
        return out


def _takes_two(fn):
    """Whether ``overrides`` takes ``(trial, cfg)`` rather than
    ``(trial)``."""
    if fn is None:
        return False
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin: call it with the trial
        return False
    positional = [
        p for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL
                                       for p in params)


def _check_configs(where, configs):
    if configs is None:
        return {}
    if isinstance(configs, (list, tuple)):
        configs = dict.fromkeys(configs)
    if not isinstance(configs, dict) or not all(
            isinstance(k, str) and (v is None or isinstance(v, str))
            for k, v in configs.items()):
        raise SpaceError(f'{where}: `configs` is {_short(configs)}; give '
                         "{'configs/x.py': 'metric/key' or None, ...}")
    return dict(configs)


def _error_line(exc, path):
    """The line of ``path`` an exception was raised from (its innermost
    frame in that file)."""
    line = getattr(exc, 'lineno', None) if isinstance(exc,
                                                      SyntaxError) else None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def load_space(path):
    """Load a space file (see the module docstring).

    runpy would hand a syntax error or an exception of the file to the
    caller as a bare traceback; here each is one line naming the file and
    line.

    Raises:
        FileNotFoundError: No such file.
        SpaceError: The file cannot be read, does not compile, raises, or
            defines something of the wrong type.
    """
    path = str(path)
    if not osp.exists(path):
        raise FileNotFoundError(f'search space file {path} not found')
    try:
        text = read_text_file(path, 'search space file', MAX_SPACE_BYTES)
    except ValueError as e:
        raise SpaceError(str(e)) from None
    ns = {'__file__': path, '__name__': '__mmext_search_space__'}
    try:
        exec(compile(text, path, 'exec'), ns)
    except SyntaxError as e:
        raise SpaceError(f'{e.filename or path} line {e.lineno}: syntax '
                         f'error ({e.msg}); fix the space file') from None
    except Exception as e:
        line = _error_line(e, path)
        at = f' line {line}' if line else ''
        msg = f'{type(e).__name__}: {e}'.splitlines()[0]
        raise SpaceError(f'{path}{at}: {msg}; fix the space file') from e
    return SearchSpace(
        ns.get('space'),
        ns.get('overrides'),
        ns.get('fixed'),
        ns.get('metric'),
        ns.get('direction'),
        path=path,
        new_keys=ns.get('new_keys', ()),
        configs=ns.get('configs'))


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
