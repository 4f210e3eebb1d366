# Copyright (c) mmext contributors. All rights reserved.
from .param_report_hook import TrainableParamsHook
from .trar_temperature_hook import TRARTemperatureHook

__all__ = ['TrainableParamsHook', 'TRARTemperatureHook']
