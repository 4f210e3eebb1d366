# Copyright (c) mmext contributors. All rights reserved.
"""Old import path of the multi-view study transforms, kept for user code.

The module is now :mod:`mmext.datasets.transforms.r2gen`, named like its
sibling ``vilbert.py``; the names here are the same objects, and nothing is
registered here (configs keep their type names).
"""
from .r2gen import *  # noqa: F401,F403
from .r2gen import __all__  # noqa: F401
