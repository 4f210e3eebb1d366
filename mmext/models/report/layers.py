# Copyright (c) mmext contributors. All rights reserved.
"""Old import path of R2Gen's Transformer blocks, kept for user code.

The module is now :mod:`mmext.models.multimodal.r2gen.layers`
(mmpretrain keeps image-to-text models under ``models/multimodal/``);
the names here are the same objects, and nothing is registered here.
"""
from ..multimodal.r2gen.layers import *  # noqa: F401,F403
from ..multimodal.r2gen.layers import (  # noqa: F401
    ConditionalSublayerConnection, SublayerConnection, __all__)
