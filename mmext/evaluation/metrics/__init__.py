# Copyright (c) mmext contributors. All rights reserved.
from .clinical import ClinicalEfficacyMetric
from .report_metrics import ReportMetric

__all__ = []
__all__ += ['ReportMetric', 'ClinicalEfficacyMetric']
