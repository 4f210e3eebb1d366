# Copyright (c) mmext contributors. All rights reserved.
import mmpretrain.visualization  # noqa: F401
