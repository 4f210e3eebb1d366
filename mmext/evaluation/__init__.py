# Copyright (c) mmext contributors. All rights reserved.
import mmpretrain.evaluation  # noqa: F401

from .metrics import *  # noqa: F401,F403
