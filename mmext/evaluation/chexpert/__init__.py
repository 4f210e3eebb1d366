# Copyright (c) mmext contributors. All rights reserved.
"""Pure-Python CheXpert-14 labeler for clinical efficacy metrics."""
from .labeler import (CATEGORIES, NEGATIVE, POSITIVE, UNCERTAIN, label_report,
                      label_reports, report_mentions)

__all__ = [
    'CATEGORIES', 'POSITIVE', 'NEGATIVE', 'UNCERTAIN', 'label_report',
    'label_reports', 'report_mentions'
]
