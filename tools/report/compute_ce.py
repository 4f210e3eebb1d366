# Copyright (c) mmext contributors. All rights reserved.
"""Clinical efficacy from CheXpert-labelled CSVs (e.g. the official
labeler's output for the ``res.csv`` / ``gts.csv`` that
``ClinicalEfficacyMetric(out_dir=...)`` writes).

    python label.py --reports_path res.csv --output_path res_labeled.csv
    python label.py --reports_path gts.csv --output_path gts_labeled.csv
    python tools/report/compute_ce.py res_labeled.csv gts_labeled.csv

Scores as R2Gen's ``compute_ce.py`` (blank and -1 -> 0), macro and micro
(:func:`mmext.evaluation.chexpert.labeled_csv.score_labeled_csvs`).
"""
import argparse
import json

from mmext.evaluation.chexpert.labeled_csv import score_labeled_csvs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('res', help='labeled CSV of the generated reports')
    p.add_argument('gts', help='labeled CSV of the reference reports')
    args = p.parse_args(argv)
    try:
        scores = score_labeled_csvs(args.res, args.gts)
    except ValueError as e:
        raise ValueError(f'compute_ce.py: {e}') from None
    print(json.dumps(scores, indent=1))
    return scores


if __name__ == '__main__':
    main()
