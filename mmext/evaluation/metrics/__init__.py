# Copyright (c) mmext contributors. All rights reserved.
from .alignment import RepresentationAlignment, compare_layers
from .clinical import ClinicalEfficacyMetric
from .multimodal import (AUROC, BinaryClassificationMetric,
                         MultiLabelClassificationMetric)
from .report_metrics import ReportMetric

__all__ = []
__all__ += ['ReportMetric', 'ClinicalEfficacyMetric']
__all__ += [
    'AUROC', 'BinaryClassificationMetric', 'MultiLabelClassificationMetric'
]
__all__ += ['RepresentationAlignment', 'compare_layers']
