# Copyright (c) mmext contributors. All rights reserved.
"""Old import path of the leakage report writers, kept for user code.

The module is now :mod:`mmext.dedup.leakage_report` (pairs CSV / JSON,
``report.html``, contact sheet, skipped files); the names here are the same
objects.
"""
from .leakage_report import *  # noqa: F401,F403
from .leakage_report import __all__  # noqa: F401
