# Copyright (c) mmext contributors. All rights reserved.
from .trar_vit import TRARViT

__all__ = ['TRARViT']
