# Copyright (c) mmext contributors. All rights reserved.
from .r2gen import *  # noqa: F401,F403
from .vilbert import *  # noqa: F401,F403
