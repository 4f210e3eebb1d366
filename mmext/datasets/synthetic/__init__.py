# Copyright (c) mmext contributors. All rights reserved.
"""Generated data in the real on-disk layouts, for the demo and smoke runs.

The real archives need a download (and some a licence), so ``make demo``
and the smoke runs write small deterministic look-alikes that the real
loaders read unchanged. :mod:`.flowers`: Oxford Flowers-17 / Flowers-102
with planted, edited near-duplicates (the leakage demo). Nothing here is
registered; importing :mod:`mmext.datasets` does not import it.
"""
from .flowers import (FLOWERS17_SPLIT_KEYS, MAT_FLAVOURS, PLANT_EDITS,
                      PlantedDuplicate, flower_image, make_flowers17,
                      make_flowers102)

__all__ = [
    'flower_image', 'make_flowers17', 'make_flowers102', 'PlantedDuplicate',
    'FLOWERS17_SPLIT_KEYS', 'MAT_FLAVOURS', 'PLANT_EDITS'
]
