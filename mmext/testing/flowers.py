# Copyright (c) mmext contributors. All rights reserved.
"""The old path of the Flowers-17 / Flowers-102 look-alikes.

The generator is a package feature (the demo runs on it), so it lives in
:mod:`mmext.datasets.synthetic.flowers`; this module re-exports the same
objects for the tests, benchmarks and user code that import them from here.
"""
from mmext.datasets.synthetic.flowers import (FLOWERS17_SPLIT_KEYS,
                                              MAT_FLAVOURS, PLANT_EDITS,
                                              PlantedDuplicate, flower_image,
                                              make_flowers17, make_flowers102)

__all__ = [
    'flower_image', 'make_flowers17', 'make_flowers102', 'PlantedDuplicate',
    'FLOWERS17_SPLIT_KEYS', 'MAT_FLAVOURS', 'PLANT_EDITS'
]
