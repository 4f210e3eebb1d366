# Copyright (c) mmext contributors. All rights reserved.
"""Small data in real on-disk formats, for tests, demos and benchmarks."""
from .checkpoints import make_google_vit_npz
from .configs import drop_pretrained, shrink_runtime, walk_config
from .data import make_image_folder, sample_photos
from .flowers import PlantedDuplicate, make_flowers17, make_flowers102
from .multimodal import (make_conceptual_captions, make_hateful_memes,
                         make_mmimdb, make_upmc_food101)
from .reports import make_iu_xray, make_mimic_cxr

__all__ = [
    'make_image_folder', 'sample_photos', 'make_flowers17', 'make_flowers102',
    'PlantedDuplicate', 'make_iu_xray', 'make_mimic_cxr'
]
__all__ += [
    'make_hateful_memes', 'make_mmimdb', 'make_upmc_food101',
    'make_conceptual_captions'
]
__all__ += ['walk_config', 'shrink_runtime', 'drop_pretrained']
__all__ += ['make_google_vit_npz']
