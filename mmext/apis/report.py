# Copyright (c) mmext contributors. All rights reserved.
"""Old import path of the report generation helpers, kept for user code.

The module is now :mod:`mmext.apis.report_generation` (``load_report_config``,
``build_report_model``, ``generate_report``, ...); the names here are the
same objects.
"""
from .report_generation import *  # noqa: F401,F403
from .report_generation import __all__  # noqa: F401
