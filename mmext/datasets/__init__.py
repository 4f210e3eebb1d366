# Copyright (c) mmext contributors. All rights reserved.
import mmpretrain.datasets  # noqa: F401

from .transforms import *  # noqa: F401,F403
