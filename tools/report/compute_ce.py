# Copyright (c) mmext contributors. All rights reserved.
"""Clinical efficacy from CheXpert-labelled CSVs (e.g. the official
labeler's output for the ``res.csv`` / ``gts.csv`` that
``ClinicalEfficacyMetric(out_dir=...)`` writes).

    python label.py --reports_path res.csv --output_path res_labeled.csv
    python label.py --reports_path gts.csv --output_path gts_labeled.csv
    python tools/report/compute_ce.py res_labeled.csv gts_labeled.csv

Scores as R2Gen's ``compute_ce.py`` (blank and -1 -> 0), macro and micro.
"""
import argparse
import csv
import json
import math
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
from mmext.evaluation.chexpert import CATEGORIES  # noqa: E402
from mmext.evaluation.metrics.clinical import clinical_scores  # noqa: E402


def read_labeled(path):
    """Label rows of a labeled CSV (``Reports`` + the 14 CheXpert columns,
    any order; ``Airspace Opacity`` accepted for ``Lung Opacity``)."""
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f'compute_ce.py: {path} has no rows')
    columns = {c.replace('Airspace Opacity', 'Lung Opacity'): c
               for c in rows[0]}
    missing = [c for c in CATEGORIES if c not in columns]
    if missing:
        raise ValueError(f'compute_ce.py: {path} lacks columns {missing}; '
                         'expected the CheXpert labeler output format')
    return [[float(r[columns[c]]) if r[columns[c]].strip() else math.nan
             for c in CATEGORIES] for r in rows]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('res', help='labeled CSV of the generated reports')
    p.add_argument('gts', help='labeled CSV of the reference reports')
    args = p.parse_args(argv)
    res, gts = read_labeled(args.res), read_labeled(args.gts)
    if len(res) != len(gts):
        raise ValueError(f'compute_ce.py: {len(res)} generated but '
                         f'{len(gts)} reference reports')
    scores = clinical_scores(gts, res)
    print(json.dumps(scores, indent=1))
    return scores


if __name__ == '__main__':
    main()
