# Copyright (c) mmext contributors. All rights reserved.
"""Old import path of the vilbert-multi-task converter, kept for user code:
it now lives in
:mod:`mmext.models.utils.checkpoint_convert.vilbert_multitask` with the
other converters. This name is the same module object."""
import sys

from mmext.models.utils.checkpoint_convert import vilbert_multitask

sys.modules[__name__] = vilbert_multitask
