# Copyright (c) mmext contributors. All rights reserved.
from .visual_tokens import VisualTokenNeck

__all__ = ['VisualTokenNeck']
