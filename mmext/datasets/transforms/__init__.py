# Copyright (c) mmext contributors. All rights reserved.
from .report import ApplyToViews, LoadMultiViewImages, PackReportInputs

__all__ = []
__all__ += ['LoadMultiViewImages', 'ApplyToViews', 'PackReportInputs']
from .vilbert import (LoadRegionFeatures, MaskRegions,  # noqa: E402
                      PackViLBERTInputs, RandomPatchMask, TokenizeCaption,
                      WeakStrongViews, vilbert_collate)

__all__ += ['WeakStrongViews', 'RandomPatchMask', 'TokenizeCaption',
            'LoadRegionFeatures', 'MaskRegions', 'PackViLBERTInputs',
            'vilbert_collate']
