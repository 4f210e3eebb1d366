# Copyright (c) mmext contributors. All rights reserved.
"""Old import path of R2Gen (``mmext.models.report``), kept for user code.

R2Gen now lives in :mod:`mmext.models.multimodal.r2gen`, where mmpretrain
keeps its image-to-text models (``models/multimodal/<algorithm>/``). This
package and its submodules (``generator``, ``r2gen_head``, ``decoding``,
``layers``, ``tokenizer``, ``data_preprocessor``) re-export the same
objects; nothing is registered here, and configs keep their type names.
"""
from ..multimodal.r2gen import *  # noqa: F401,F403
from ..multimodal.r2gen import __all__  # noqa: F401
