# Copyright (c) mmext contributors. All rights reserved.
from .partial_freeze import PartialFreeze
from .trar_vit import TRARViT

__all__ = ['PartialFreeze', 'TRARViT']
