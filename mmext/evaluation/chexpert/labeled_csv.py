# Copyright (c) mmext contributors. All rights reserved.
"""Clinical efficacy from CheXpert-labelled CSV files.

The official CheXpert labeler (``label.py --reports_path res.csv
--output_path res_labeled.csv``) writes one row per report: ``Reports`` and
the 14 observation columns (1, 0, -1 or blank). :func:`read_labeled_csv`
reads that format (any column order; ``Airspace Opacity``, the labeler's
older name, is taken for ``Lung Opacity``), and :func:`score_labeled_csvs`
scores generated against reference reports as R2Gen's ``compute_ce.py``
does (blank and -1 count as 0), macro and micro
(:func:`mmext.evaluation.metrics.clinical.clinical_scores`). R2Gen reads
the files with pandas; this reader needs only the standard library.

CLI: ``tools/report/compute_ce.py``.
"""
import csv
import math

from .labeler import CATEGORIES

__all__ = ['read_labeled_csv', 'score_labeled_csvs']


def read_labeled_csv(path):
    """The label rows of a labelled CSV, in :data:`CATEGORIES` order.

    Args:
        path (str): The labeler's output CSV.

    Returns:
        list[list[float]]: One row per report: 1.0, 0.0, -1.0 or nan
        (blank).

    Raises:
        ValueError: The file has no rows or lacks a CheXpert column (the
            message names the file and the columns).
    """
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f'{path} has no rows')
    columns = {
        c.replace('Airspace Opacity', 'Lung Opacity'): c
        for c in rows[0]
    }
    missing = [c for c in CATEGORIES if c not in columns]
    if missing:
        raise ValueError(f'{path} lacks columns {missing}; expected the '
                         'CheXpert labeler output format')
    return [[
        float(r[columns[c]]) if r[columns[c]].strip() else math.nan
        for c in CATEGORIES
    ] for r in rows]


def score_labeled_csvs(res_path, gts_path):
    """Clinical efficacy of generated vs reference reports.

    Args:
        res_path (str): Labelled CSV of the generated reports.
        gts_path (str): Labelled CSV of the reference reports, same order.

    Returns:
        dict: ``P_macro``, ``R_macro``, ``F1_macro``, ``P_micro``,
        ``R_micro``, ``F1_micro``.

    Raises:
        ValueError: A file :func:`read_labeled_csv` refuses, or the two
            hold different numbers of reports.
    """
    from mmext.evaluation.metrics.clinical import clinical_scores
    res, gts = read_labeled_csv(res_path), read_labeled_csv(gts_path)
    if len(res) != len(gts):
        raise ValueError(f'{len(res)} generated but {len(gts)} reference '
                         f'reports ({res_path}, {gts_path}); label the two '
                         'files of one test run')
    return clinical_scores(gts, res)
