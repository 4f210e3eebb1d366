# Copyright (c) mmext contributors. All rights reserved.
from .r2gen import ApplyToViews, LoadMultiViewImages, PackReportInputs
from .vilbert import (LoadRegionFeatures, MaskRegions, PackViLBERTInputs,
                      RandomPatchMask, TokenizeCaption, WeakStrongViews,
                      vilbert_collate)

__all__ = [
    'LoadMultiViewImages', 'ApplyToViews', 'PackReportInputs',
    'WeakStrongViews', 'RandomPatchMask', 'TokenizeCaption',
    'LoadRegionFeatures', 'MaskRegions', 'PackViLBERTInputs', 'vilbert_collate'
]
