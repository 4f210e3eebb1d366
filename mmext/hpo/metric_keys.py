# Copyright (c) mmext contributors. All rights reserved.
"""Moved to :mod:`mmext.evaluation.metric_keys` (the pre-run check of
:mod:`mmext.apis` uses it too, and apis sits above hpo); kept as an alias."""
from mmext.evaluation.metric_keys import (KNOWN_KEYS, check_metrics,
                                          metric_keys, validation_keys)

__all__ = ['KNOWN_KEYS', 'metric_keys', 'validation_keys', 'check_metrics']
