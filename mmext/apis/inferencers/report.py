# Copyright (c) mmext contributors. All rights reserved.
"""Old import path of the R2Gen inferencer, kept for user code.

The module is now :mod:`mmext.apis.inferencers.r2gen`, named like its
siblings ``vilbert.py`` and ``butd.py``; the names here are the same objects.
"""
from .r2gen import *  # noqa: F401,F403
from .r2gen import __all__  # noqa: F401
