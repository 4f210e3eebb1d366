# Copyright (c) mmext contributors. All rights reserved.
"""Small data in real on-disk formats, for tests, demos and benchmarks."""
from .data import make_image_folder, sample_photos

__all__ = ['make_image_folder', 'sample_photos']
