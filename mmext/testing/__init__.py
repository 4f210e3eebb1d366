# Copyright (c) mmext contributors. All rights reserved.
"""Small data in real on-disk formats, for tests, demos and benchmarks."""
from .data import make_image_folder, sample_photos
from .flowers import PlantedDuplicate, make_flowers17, make_flowers102
from .reports import make_iu_xray, make_mimic_cxr

__all__ = ['make_image_folder', 'sample_photos', 'make_flowers17',
           'make_flowers102', 'PlantedDuplicate', 'make_iu_xray',
           'make_mimic_cxr']
