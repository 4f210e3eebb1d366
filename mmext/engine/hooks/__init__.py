# Copyright (c) mmext contributors. All rights reserved.
from .alignment_hook import AlignmentHook
from .dist_consistency_hook import DistConsistencyHook
from .load_from_filter_hook import LoadFromFilterHook
from .optuna_pruning_hook import OptunaPruningHook
from .param_report_hook import TrainableParamsHook
from .rng_state_hook import RNGStateHook
from .run_status_hook import RunStatusHook
from .trar_temperature_hook import TRARTemperatureHook

__all__ = [
    'DistConsistencyHook', 'RNGStateHook', 'TrainableParamsHook',
    'LoadFromFilterHook', 'TRARTemperatureHook'
]
__all__ += ['AlignmentHook', 'OptunaPruningHook']
__all__ += ['RunStatusHook']
