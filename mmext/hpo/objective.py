# Copyright (c) mmext contributors. All rights reserved.
"""One Optuna trial = one real mmengine training run in its own work dir."""
import copy
import logging
import os
import os.path as osp
import socket
import time
import traceback
import warnings

import optuna
from mmengine.config import Config

from mmext.engine.hooks import OptunaPruningHook
from .space import SpaceError, check_overrides

__all__ = [
    'ConfigObjective', 'apply_overrides', 'probe_overrides', 'worker_id',
    'process_start', 'trial_runner_class'
]

_REDUCE = ('last', 'best')


def apply_overrides(cfg, overrides):
    """A copy of ``cfg`` with ``{dotted key: value}`` merged in (list
    indices allowed, as ``--cfg-options``)."""
    cfg = copy.deepcopy(cfg)
    cfg.merge_from_dict(overrides, allow_list_keys=True)
    return cfg


def probe_overrides(space, cfg, n=16, seed=0):
    """Check the keys of ``n`` random trials' overrides against ``cfg``
    before the study starts (an ``overrides(trial)`` function may set
    different keys for different parameters).

    The probe trials live in a throw-away in-memory study. A trial whose
    ``overrides`` raises is skipped (in the study it will be FAIL with that
    reason and the run goes on); if every probe trial raises, nothing could
    train and the first error is raised here.

    Raises:
        ConfigError: A key the config lacks.
        SpaceError: ``overrides(trial)`` failed for every probe trial.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed))
    failed = []
    for _ in range(n):
        trial = probe.ask()
        try:
            overrides = space.sample(trial, cfg)
        except optuna.TrialPruned:
            continue
        except SpaceError as exc:
            failed.append(exc)
            continue
        check_overrides(cfg, overrides, space.path or 'search space',
                        space.new_keys)
        apply_overrides(cfg, overrides)  # mergeable (list index in range)
    if failed and len(failed) == n:
        raise SpaceError(f'{failed[0]} (in all {n} probe trials before the '
                         'study; nothing would train)')


def worker_id():
    """``host/pid/start`` of this process (start: its start time in clock
    ticks since boot, so a reused pid is told apart), recorded on each
    trial so a resumed study can tell a dead run from a live one."""
    return f'{socket.gethostname()}/{os.getpid()}/{process_start(os.getpid())}'


def process_start(pid):
    """A process's start time from ``/proc`` (None where there is none or
    the process is a zombie)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rpartition(')')[2].split()
    except OSError:
        return None
    return None if fields[0] == 'Z' else fields[19]


def _reason(exc):
    text = f'{type(exc).__name__}: {exc}'.strip()
    if 'out of memory' in text.lower() or isinstance(exc, MemoryError):
        text = 'out of memory: ' + text
    return text[:1000]


def trial_runner_class(log_file, console=False):
    """A Runner class whose logger writes ``log_file`` (and the console
    only if ``console``).

    mmengine's Runner builds its MMLogger with a console handler and logs
    the environment, the whole config and every iteration through it; it
    has no option to keep that off the console, and its logger is named
    after the run's timestamp, so it cannot be made beforehand. This
    subclass overrides :meth:`Runner.build_logger` (called in
    ``__init__`` before the environment is logged).

    Args:
        log_file (str): The trial's log file.
        console (bool): Keep mmengine's console handler too.
    """
    from mmengine.runner import Runner

    class TrialRunner(Runner):

        def build_logger(self, log_level='INFO', log_file=None, **kwargs):
            logger = super().build_logger(log_level, trial_log, **kwargs)
            if not console:
                for handler in list(logger.handlers):
                    if not isinstance(handler, logging.FileHandler):
                        logger.removeHandler(handler)
            TrialRunner.built_logger = logger  # closed even if init fails
            return logger

    TrialRunner.built_logger = None
    trial_log = log_file
    return TrialRunner


def _close_logger(logger):
    # each trial's MMLogger keeps its log file open; release it
    for handler in list(logger.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            logger.removeHandler(handler)


def _log_warning(message, category, filename, lineno, file=None, line=None):
    """``warnings.showwarning`` for a trial: to the current (the trial's)
    MMLogger, so Python warnings land in its log file, not the console."""
    from mmengine.logging import print_log
    print_log(
        warnings.formatwarning(message, category, filename, lineno,
                               line).rstrip(),
        logger='current',
        level=logging.WARNING)


class ConfigObjective:
    """Callable objective: sample overrides, train, return the metric(s).

    Args:
        config (str): Config file.
        space (SearchSpace): The loaded space.
        work_root (str): Trials run in ``{work_root}/trial_{number}``.
        metrics (list[str]): Validation metric key(s) to optimise.
        reduce (str): ``'last'`` (the final validation, as the written best
            config would train) or ``'best'`` (the best epoch). Defaults to
            ``'last'``.
        directions (list[str]): Needed for ``reduce='best'``.
        cfg_options (dict, optional): Applied before the trial overrides.
        prune (bool): Let the pruner stop trials. Defaults to True.
        console_log (bool): Also print the Runner's log (environment,
            config, iterations) on the console; it is always written to
            ``trial_{number}/train.log``. Defaults to False.
    """

    def __init__(self,
                 config,
                 space,
                 work_root,
                 metrics,
                 reduce='last',
                 directions=('maximize', ),
                 cfg_options=None,
                 prune=True,
                 console_log=False):
        if reduce not in _REDUCE:
            raise ValueError(f'reduce={reduce!r} not in {_REDUCE}')
        self.config = config
        self.space = space
        self.work_root = work_root
        self.metrics = list(metrics)
        self.reduce = reduce
        self.directions = list(directions)
        self.prune = prune
        self.console_log = console_log
        self.base_cfg = Config.fromfile(config)
        if cfg_options:
            self.base_cfg.merge_from_dict(cfg_options)

    def trial_config(self, trial):
        """The trial's config (its overrides recorded as a user attr)."""
        overrides = self.space.sample(trial, self.base_cfg)
        check_overrides(self.base_cfg, overrides, self.space.path
                        or 'search space', self.space.new_keys)
        trial.set_user_attr('overrides', overrides)
        cfg = apply_overrides(self.base_cfg, overrides)
        work_dir = osp.join(self.work_root, f'trial_{trial.number}')
        trial.set_user_attr('work_dir', work_dir)
        cfg.work_dir = work_dir
        # unique per run: mmengine reuses a logger/visualizer of the same
        # name, i.e. of a trial started within the same second
        cfg.experiment_name = f'trial_{trial.number}_{time.time_ns()}'
        cfg.setdefault('launcher', 'none')
        return cfg

    def _reduce(self, history):
        if not history:
            raise RuntimeError('training ended without a validation epoch '
                               '(set train_cfg.val_interval)')
        if self.reduce == 'last':
            return history[-1]
        out = []
        for i, direction in enumerate(self.directions):
            pick = max if direction == 'maximize' else min
            out.append(pick(h[i] for h in history))
        return out

    def __call__(self, trial):
        from mmext.apis import prepare_config
        runner_cls = None
        # a retried trial inherits the user attrs of the one that died
        trial.set_user_attr('fail_reason', None)
        trial.set_user_attr('traceback', None)
        trial.set_user_attr('worker', worker_id())
        try:
            cfg = prepare_config(self.trial_config(trial), mode='train')
            log_file = osp.join(cfg.work_dir, 'train.log')
            if osp.isfile(log_file):  # of an earlier study in this work dir
                os.remove(log_file)
            trial.set_user_attr('log_file', log_file)
            runner_cls = trial_runner_class(log_file, self.console_log)
            with warnings.catch_warnings():
                warnings.showwarning = _log_warning
                runner = runner_cls.from_cfg(cfg)
                hook = OptunaPruningHook(trial, self.metrics, prune=self.prune)
                runner.register_hook(hook)
                runner.train()
            values = self._reduce(hook.history)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            # FAIL with its reason (study.optimize catches it), never a score;
            # the traceback goes to a file, the console gets one line
            trial.set_user_attr('fail_reason', _reason(exc))
            trial.set_user_attr('traceback', self._write_traceback(trial))
            raise
        finally:
            if runner_cls is not None and runner_cls.built_logger:
                _close_logger(runner_cls.built_logger)
        return values[0] if len(values) == 1 else values

    def _write_traceback(self, trial):
        path = osp.join(self.work_root, f'trial_{trial.number}',
                        'traceback.txt')
        try:
            os.makedirs(osp.dirname(path), exist_ok=True)
            with open(path, 'w') as f:
                f.write(traceback.format_exc())
        except OSError:
            return None
        return path
