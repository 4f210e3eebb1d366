# Copyright (c) mmext contributors. All rights reserved.
"""An HTML page with each study's images, reference and generated report.

    python tools/test.py CONFIG CKPT --work-dir work_dirs/x
    python tools/report/make_html.py work_dirs/x/<timestamp>/reports.json \
        --out work_dirs/x/reports.html [--embed]

The input is the ``reports.json`` that ``ReportMetric(out_dir=...)`` writes
(list of ``{study_id, img_path, gt_report, pred_report}``). Each row also
lists the CheXpert observations found in both reports (mmext's labeler) so
clinically wrong reports stand out.
"""
import argparse
import base64
import html
import io
import json
import math
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
from mmext.evaluation.chexpert import CATEGORIES, label_report  # noqa: E402

_STYLE = """
body { font-family: sans-serif; margin: 1em; }
table { border-collapse: collapse; width: 100%; }
td, th { border: 1px solid #ccc; padding: 6px; vertical-align: top; }
img { max-height: 224px; margin-right: 4px; }
.miss { color: #b00; } .extra { color: #a60; } .ok { color: #070; }
"""


def _findings(report):
    out = {}
    for c, v in zip(CATEGORIES, label_report(report)):
        if not (isinstance(v, float) and math.isnan(v)) and v != 0:
            out[c] = 'uncertain' if v == -1 else 'positive'
    return out


def _img_src(path, page_dir, embed, max_side=256):
    if not embed:
        return html.escape(osp.relpath(path, page_dir))
    from PIL import Image
    img = Image.open(path).convert('RGB')
    img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format='JPEG', quality=85)
    return 'data:image/jpeg;base64,' + base64.b64encode(
        buf.getvalue()).decode()


def _finding_cell(gt, pred):
    parts = []
    for c in sorted(set(gt) | set(pred)):
        cls = 'ok' if c in gt and c in pred else (
            'miss' if c in gt else 'extra')
        parts.append(f'<span class="{cls}">{html.escape(c)}</span>')
    return ', '.join(parts) or '&mdash;'


def make_html(rows, out_file, embed=False, title='Generated reports'):
    """Write the page for ``rows`` (dicts as in ``reports.json``)."""
    page_dir = osp.dirname(osp.abspath(out_file))
    body = []
    for r in rows:
        imgs = ''.join(
            f'<img src="{_img_src(p, page_dir, embed)}" '
            f'alt="{html.escape(osp.basename(p))}">'
            if osp.isfile(p) else
            f'<span class="miss">missing {html.escape(p)}</span>'
            for p in r.get('img_path') or [])
        body.append(
            f'<tr><td>{html.escape(str(r.get("study_id")))}<br>{imgs}</td>'
            f'<td>{html.escape(r["gt_report"])}</td>'
            f'<td>{html.escape(r["pred_report"])}</td>'
            f'<td>{_finding_cell(_findings(r["gt_report"]), _findings(r["pred_report"]))}</td></tr>')  # noqa: E501
    os.makedirs(page_dir, exist_ok=True)
    with open(out_file, 'w') as f:
        f.write(
            f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>'
            f'{html.escape(title)}</title><style>{_STYLE}</style></head>'
            f'<body><h1>{html.escape(title)}</h1><p>{len(rows)} studies. '
            'Findings (CheXpert, mmext labeler): <span class="ok">in both'
            '</span>, <span class="miss">missed</span>, <span class="extra">'
            'not in the reference</span>.</p><table><tr><th>Study</th>'
            '<th>Reference</th><th>Generated</th><th>Findings</th></tr>'
            + '\n'.join(body) + '</table></body></html>')
    return out_file


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('reports', help='reports.json written by ReportMetric')
    p.add_argument('--out', help='HTML file (default: beside the JSON)')
    p.add_argument('--embed', action='store_true',
                   help='embed image thumbnails (self-contained page)')
    p.add_argument('--limit', type=int, help='first N studies only')
    args = p.parse_args(argv)
    with open(args.reports) as f:
        rows = json.load(f)
    if not isinstance(rows, list) or (rows and 'pred_report' not in rows[0]):
        raise ValueError(f'make_html.py: {args.reports} is not a reports.json'
                         ' of ReportMetric (list of {study_id, img_path, '
                         'gt_report, pred_report})')
    if args.limit:
        rows = rows[:args.limit]
    out = args.out or osp.splitext(args.reports)[0] + '.html'
    make_html(rows, out, args.embed)
    print(f'wrote {out} ({len(rows)} studies)')
    return out


if __name__ == '__main__':
    main()
