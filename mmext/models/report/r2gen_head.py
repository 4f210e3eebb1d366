# Copyright (c) mmext contributors. All rights reserved.
"""Old import path of R2Gen's encoder-decoder head, kept for user code.

The module is now :mod:`mmext.models.multimodal.r2gen.r2gen_head`
(mmpretrain keeps image-to-text models under ``models/multimodal/``);
the names here are the same objects, and nothing is registered here.
"""
from ..multimodal.r2gen.r2gen_head import *  # noqa: F401,F403
from ..multimodal.r2gen.r2gen_head import (  # noqa: F401
    VocabSizeMismatchError, __all__)
