# Copyright (c) mmext contributors. All rights reserved.
import mmpretrain.datasets  # noqa: F401

from .conceptual_captions import ConceptualCaptions  # noqa: F401
from .dataset_wrappers import ExcludeImages, LeakageError  # noqa: F401
from .flowers import Flowers17, Flowers102  # noqa: F401
from .hateful_memes import HatefulMemes  # noqa: F401
from .image_text import ImageTextDataset, RecordError  # noqa: F401
from .iu_xray import IUXray  # noqa: F401
from .mimic_cxr import MIMICCXR  # noqa: F401
from .mmimdb import MMIMDb  # noqa: F401
from .report_dataset import AnnotationError, R2GenReportDataset  # noqa: F401
from .seeded_split import SeededSplit  # noqa: F401
from .transforms import *  # noqa: F401,F403
from .upmc_food101 import UPMCFood101  # noqa: F401
