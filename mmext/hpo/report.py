# Copyright (c) mmext contributors. All rights reserved.
"""Old import path of the HPO study report, kept for user code.

The module is now :mod:`mmext.hpo.study_report` (trial table, best config
files, plots); the names here are the same objects.
"""
from .study_report import *  # noqa: F401,F403
from .study_report import __all__  # noqa: F401
