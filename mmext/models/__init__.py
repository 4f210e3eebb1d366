# Copyright (c) mmext contributors. All rights reserved.
import mmpretrain.models  # noqa: F401  (parents of mmext's registries)

from .backbones import *  # noqa: F401,F403
from .detectors import *  # noqa: F401,F403
from .multimodal import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
