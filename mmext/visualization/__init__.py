# Copyright (c) mmext contributors. All rights reserved.
import mmpretrain.visualization  # noqa: F401

from .report_html import read_reports_json, report_findings, write_reports_html
from .trar_routing import (collect_trar_routing, draw_trar_routing,
                           effective_span, save_trar_routing)

__all__ = [
    'collect_trar_routing', 'draw_trar_routing', 'effective_span',
    'save_trar_routing', 'read_reports_json', 'report_findings',
    'write_reports_html'
]
from .compare_page import write_html, write_plots  # noqa: E402

__all__ += ['write_plots', 'write_html']
