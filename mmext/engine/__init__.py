# Copyright (c) mmext contributors. All rights reserved.
import mmpretrain.engine  # noqa: F401

from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
