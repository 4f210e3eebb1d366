# Copyright (c) mmext contributors. All rights reserved.
"""An HTML page with each study's images, reference and generated report.

The input rows are those of the ``reports.json`` that
``ReportMetric(out_dir=...)`` writes (``{study_id, img_path, gt_report,
pred_report}``). Each row also lists the CheXpert observations found in
both reports (mmext's labeler, :mod:`mmext.evaluation.chexpert`), so
clinically wrong reports stand out: found in both, missed, or not in the
reference. Images are linked relative to the page, or embedded as JPEG
thumbnails (:mod:`mmext.utils.images`) for a self-contained page.

CLI: ``tools/report/make_html.py``.
"""
import html
import json
import math
import os
import os.path as osp

from mmext.utils.images import image_data_uri, thumbnail

__all__ = ['report_findings', 'read_reports_json', 'write_reports_html']

_STYLE = """
body { font-family: sans-serif; margin: 1em; }
table { border-collapse: collapse; width: 100%; }
td, th { border: 1px solid #ccc; padding: 6px; vertical-align: top; }
img { max-height: 224px; margin-right: 4px; }
.miss { color: #b00; } .extra { color: #a60; } .ok { color: #070; }
"""


def report_findings(report):
    """The CheXpert observations a report mentions, not as negative.

    Args:
        report (str): A radiology report.

    Returns:
        dict[str, str]: Observation -> ``'positive'`` or ``'uncertain'``.

    Example:
        >>> report_findings('the heart is enlarged .')
        {'Cardiomegaly': 'positive'}
    """
    from mmext.evaluation.chexpert import CATEGORIES, label_report
    out = {}
    for c, v in zip(CATEGORIES, label_report(report)):
        if not (isinstance(v, float) and math.isnan(v)) and v != 0:
            out[c] = 'uncertain' if v == -1 else 'positive'
    return out


def read_reports_json(path):
    """The rows of a ``reports.json`` written by ``ReportMetric``.

    Raises:
        ValueError: The file is not such a list (naming the file and the
            expected keys).
    """
    with open(path) as f:
        rows = json.load(f)
    if not isinstance(rows, list) or (rows and 'pred_report' not in rows[0]):
        raise ValueError(f'{path} is not a reports.json of ReportMetric '
                         '(list of {study_id, img_path, gt_report, '
                         'pred_report})')
    return rows


def _img_src(path, page_dir, embed, max_side=256):
    if not embed:
        return html.escape(osp.relpath(path, page_dir))
    return image_data_uri(thumbnail(path, max_side))


def _finding_cell(gt, pred):
    parts = []
    for c in sorted(set(gt) | set(pred)):
        cls = 'ok' if c in gt and c in pred else (
            'miss' if c in gt else 'extra')
        parts.append(f'<span class="{cls}">{html.escape(c)}</span>')
    return ', '.join(parts) or '&mdash;'


def _row(r, page_dir, embed):
    imgs = ''.join(
        f'<img src="{_img_src(p, page_dir, embed)}" '
        f'alt="{html.escape(osp.basename(p))}">' if osp.
        isfile(p) else f'<span class="miss">missing {html.escape(p)}</span>'
        for p in r.get('img_path') or [])
    findings = _finding_cell(
        report_findings(r['gt_report']), report_findings(r['pred_report']))
    return (f'<tr><td>{html.escape(str(r.get("study_id")))}<br>{imgs}</td>'
            f'<td>{html.escape(r["gt_report"])}</td>'
            f'<td>{html.escape(r["pred_report"])}</td>'
            f'<td>{findings}</td></tr>')


def write_reports_html(rows, out_file, embed=False, title='Generated reports'):
    """Write the page for ``rows``.

    Args:
        rows (list[dict]): Rows as in ``reports.json``.
        out_file (str): The HTML file (its folder is created).
        embed (bool): Embed image thumbnails (a self-contained page)
            instead of linking the images. Defaults to False.
        title (str): Page title. Defaults to 'Generated reports'.

    Returns:
        str: ``out_file``.
    """
    page_dir = osp.dirname(osp.abspath(out_file))
    body = [_row(r, page_dir, embed) for r in rows]
    os.makedirs(page_dir, exist_ok=True)
    with open(out_file, 'w') as f:
        f.write(
            f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>'
            f'{html.escape(title)}</title><style>{_STYLE}</style></head>'
            f'<body><h1>{html.escape(title)}</h1><p>{len(rows)} studies. '
            'Findings (CheXpert, mmext labeler): <span class="ok">in both'
            '</span>, <span class="miss">missed</span>, <span class="extra">'
            'not in the reference</span>.</p><table><tr><th>Study</th>'
            '<th>Reference</th><th>Generated</th><th>Findings</th></tr>' +
            '\n'.join(body) + '</table></body></html>')
    return out_file
