# Copyright (c) mmext contributors. All rights reserved.
from .report import ApplyToViews, LoadMultiViewImages, PackReportInputs

__all__ = []
__all__ += ['LoadMultiViewImages', 'ApplyToViews', 'PackReportInputs']
