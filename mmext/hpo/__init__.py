# Copyright (c) mmext contributors. All rights reserved.
"""Optuna hyper-parameter / architecture search over mmext configs."""
from .coattention import (coattention_layers, stream_depths,
                          suggest_coattention, vilbert_key)
from .console import (TrialPrinter, short_names, study_line, summary_lines,
                      trial_line)
from .metric_keys import check_metrics, validation_keys
from .objective import ConfigObjective, apply_overrides, probe_overrides
from .search import resolve_objective, search
from .space import (SearchSpace, SpaceError, check_overrides, get_key,
                    load_space)
from .study import (fail_dead_trials, make_pruner, make_sampler, make_storage,
                    open_study, run_study)
from .study_report import (best_trials, failure_summary, trial_table,
                           write_best_config, write_best_configs, write_plots,
                           write_trial_table)

__all__ = [
    'SearchSpace', 'load_space', 'check_overrides', 'get_key',
    'ConfigObjective', 'apply_overrides', 'probe_overrides', 'make_storage',
    'make_pruner', 'make_sampler', 'open_study', 'run_study', 'trial_table',
    'write_trial_table', 'best_trials', 'write_best_config',
    'write_best_configs', 'write_plots', 'coattention_layers',
    'suggest_coattention', 'search', 'resolve_objective', 'SpaceError',
    'check_metrics', 'validation_keys', 'fail_dead_trials', 'failure_summary',
    'stream_depths', 'vilbert_key', 'TrialPrinter', 'short_names',
    'study_line', 'summary_lines', 'trial_line'
]
