# Copyright (c) mmext contributors. All rights reserved.
"""Log what a run comparison needs and mmengine leaves out."""
import resource
import sys

from mmengine.hooks import Hook

from mmext.registry import HOOKS

__all__ = ['RunStatusHook', 'peak_rss_mb']


def peak_rss_mb():
    """Peak resident memory of this process in MiB (Linux ``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@HOOKS.register_module()
class RunStatusHook(Hook):
    """Log the peak CPU memory per iteration and the error that ends a run.

    mmengine logs ``memory`` (MiB) only on CUDA and writes an uncaught
    exception to the console, not to the run's log: a CPU run has no memory
    record and a crashed run's log just stops. This hook adds ``rss_mb``
    (the process's peak resident memory, MiB) to every logged training
    line of ``scalars.json`` and logs the exception that ends the process
    as one ``ERROR`` line of ``<timestamp>.log`` (``ValueError: ...``),
    which ``tools/analysis_tools/compare_runs.py`` reports as the status
    ``crashed``.

    Example:
        >>> custom_hooks = [dict(type='RunStatusHook')]
        >>> # scalars.json: {"loss": 0.9, ..., "rss_mb": 812.4, "step": 3}
        >>> # <ts>.log: ... - mmengine - ERROR - RuntimeError: CUDA error
    """

    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL) reads the hub

    def before_run(self, runner):
        previous = sys.excepthook
        logger = runner.logger

        def log_then_report(exc_type, exc, tb):
            lines = str(exc).strip().splitlines()
            try:
                logger.error(f'{exc_type.__name__}: {lines[-1]}'
                             if lines else exc_type.__name__)
            finally:
                previous(exc_type, exc, tb)

        self._previous = previous
        sys.excepthook = log_then_report

    def after_run(self, runner):
        sys.excepthook = getattr(self, '_previous', sys.excepthook)

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        runner.message_hub.update_scalar('train/rss_mb', peak_rss_mb())
