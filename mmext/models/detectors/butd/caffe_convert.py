# Copyright (c) mmext contributors. All rights reserved.
"""Old import path of the BUTD caffemodel converter, kept for user code: it
now lives in :mod:`mmext.models.utils.checkpoint_convert.butd_caffe` with
the other converters. This name is the same module object."""
import sys

from mmext.models.utils.checkpoint_convert import butd_caffe

sys.modules[__name__] = butd_caffe
