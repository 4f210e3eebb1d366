# Copyright (c) mmext contributors. All rights reserved.
from .param_report_hook import TrainableParamsHook

__all__ = ['TrainableParamsHook']
