# Copyright (c) mmext contributors. All rights reserved.
"""Report validation metrics to an Optuna trial every epoch and prune."""
import math

from mmengine.hooks import Hook

from mmext.registry import HOOKS

__all__ = ['OptunaPruningHook']


def _scalar(value):
    return float(value.item() if hasattr(value, 'item') else value)


@HOOKS.register_module()
class OptunaPruningHook(Hook):
    """Hand each validation epoch's metric(s) to an Optuna trial.

    After every validation the values of ``metrics`` are kept (``history``)
    and, for a single-objective study, reported with ``trial.report``; when
    the study's pruner says so, ``optuna.TrialPruned`` stops the run. A
    non-finite training loss or metric raises ``FloatingPointError``, so the
    trial is recorded as failed with that reason instead of scoring. The
    thesis code reported values but never asked ``should_prune``, and turned
    every error into a score of 0.0.

    ``tools/hpo.py`` adds this hook to each trial's runner (a trial object
    cannot be written into a config file).

    Args:
        trial (optuna.trial.Trial): The running trial.
        metrics (str | Sequence[str]): Validation metric key(s), e.g.
            ``'accuracy/top1'``.
        prune (bool): Ask the pruner after each report. Defaults to True.

    Steps are epochs, or iterations for an ``IterBasedTrainLoop``.
    """

    # after hooks that add validation metrics (AlignmentHook is NORMAL)
    priority = 'LOW'

    def __init__(self, trial, metrics, prune=True):
        self.trial = trial
        self.metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        self.prune = prune
        self.history = []

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        loss = (outputs or {}).get('loss')
        if loss is not None and not math.isfinite(_scalar(loss)):
            raise FloatingPointError(
                f'training loss is {_scalar(loss)} at epoch '
                f'{runner.epoch + 1}, iteration {runner.iter + 1}')

    def after_val_epoch(self, runner, metrics=None):
        import optuna
        metrics = metrics or {}
        missing = [m for m in self.metrics if m not in metrics]
        if missing:
            raise KeyError(
                f'validation gave no {missing}; it gave {sorted(metrics)} '
                '(pass one of those as --metric)')
        values = [_scalar(metrics[m]) for m in self.metrics]
        bad = [m for m, v in zip(self.metrics, values) if not math.isfinite(v)]
        if bad:
            raise FloatingPointError(
                f'validation metric {bad[0]} is not finite at epoch '
                f'{runner.epoch}')
        self.history.append(values)
        if len(values) > 1:  # Optuna cannot prune multi-objective studies
            return
        from mmengine.runner import IterBasedTrainLoop
        step = runner.iter if isinstance(runner.train_loop,
                                         IterBasedTrainLoop) else runner.epoch
        self.trial.report(values[0], step=step)
        if self.prune and self.trial.should_prune():
            raise optuna.TrialPruned(
                f'pruned after step {step}: {self.metrics[0]}={values[0]}')
