# Copyright (c) mmext contributors. All rights reserved.
from .vilbert import *  # noqa: F401,F403
