# Copyright (c) mmext contributors. All rights reserved.
"""An HTML page with each study's images, reference and generated report.

    python tools/test.py CONFIG CKPT --work-dir work_dirs/x
    python tools/report/make_html.py work_dirs/x/<timestamp>/reports.json \
        --out work_dirs/x/reports.html [--embed]

The input is the ``reports.json`` that ``ReportMetric(out_dir=...)`` writes
(list of ``{study_id, img_path, gt_report, pred_report}``). Each row also
lists the CheXpert observations found in both reports (mmext's labeler) so
clinically wrong reports stand out. The page is
:func:`mmext.visualization.report_html.write_reports_html`'s.
"""
import argparse
import os.path as osp

from mmext.visualization.report_html import (read_reports_json,
                                             write_reports_html)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('reports', help='reports.json written by ReportMetric')
    p.add_argument('--out', help='HTML file (default: beside the JSON)')
    p.add_argument(
        '--embed',
        action='store_true',
        help='embed image thumbnails (self-contained page)')
    p.add_argument('--limit', type=int, help='first N studies only')
    args = p.parse_args(argv)
    try:
        rows = read_reports_json(args.reports)
    except ValueError as e:
        raise ValueError(f'make_html.py: {e}') from None
    if args.limit:
        rows = rows[:args.limit]
    out = args.out or osp.splitext(args.reports)[0] + '.html'
    write_reports_html(rows, out, args.embed)
    print(f'wrote {out} ({len(rows)} studies)')
    return out


if __name__ == '__main__':
    main()
