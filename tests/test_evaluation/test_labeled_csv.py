# Copyright (c) mmext contributors. All rights reserved.
"""Clinical efficacy from labeller-output CSVs (the official CheXpert
labeler's format), against sklearn on the binarised labels; the
tools/report/compute_ce.py CLI prints the same scores."""
import csv
import json
import math
import random

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from mmext.evaluation.chexpert import CATEGORIES
from mmext.evaluation.chexpert.labeled_csv import (read_labeled_csv,
                                                   score_labeled_csvs)
from tests.conftest import ROOT, run_tool


def _labels(n, seed):
    rng = random.Random(seed)
    return [[
        rng.choice([1.0, 0.0, -1.0, math.nan, math.nan]) for _ in CATEGORIES
    ] for _ in range(n)]


def _write(path, labels, seed, old_names=False):
    """The labeler's output: Reports + 14 columns, here shuffled, blanks
    empty, optionally with its older 'Airspace Opacity' column name."""
    names = [('Airspace Opacity' if old_names and c == 'Lung Opacity' else c)
             for c in CATEGORIES]
    order = list(range(len(names)))
    random.Random(seed).shuffle(order)
    with open(path, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['Reports'] + [names[i] for i in order])
        for k, row in enumerate(labels):
            w.writerow(
                [f'report {k}'] +
                ['' if math.isnan(row[i]) else str(row[i]) for i in order])


def _sklearn(gt, pred):

    def binary(rows):  # R2Gen's compute_ce: blank -> 0, -1 -> 0
        arr = np.nan_to_num(np.array(rows), nan=0.0)
        return (arr == 1).astype(int)

    g, p = binary(gt), binary(pred)
    out = {}
    for avg in ('macro', 'micro'):
        prec, rec, f1, _ = precision_recall_fscore_support(
            g, p, average=avg, zero_division=0)
        out.update({f'P_{avg}': prec, f'R_{avg}': rec, f'F1_{avg}': f1})
    return out


@pytest.fixture
def csvs(tmp_path):
    gt, pred = _labels(40, 0), _labels(40, 1)
    _write(tmp_path / 'gts_labeled.csv', gt, seed=2)
    _write(tmp_path / 'res_labeled.csv', pred, seed=3, old_names=True)
    return tmp_path, gt, pred


def test_reader_keeps_values_and_order(csvs):
    tmp, gt, pred = csvs
    back = read_labeled_csv(tmp / 'res_labeled.csv')
    assert len(back) == len(pred)
    for got, want in zip(back, pred):
        assert [('nan' if math.isnan(v) else v) for v in got
                ] == [('nan' if math.isnan(v) else v) for v in want]


def test_scores_match_sklearn(csvs):
    tmp, gt, pred = csvs
    got = score_labeled_csvs(tmp / 'res_labeled.csv', tmp / 'gts_labeled.csv')
    want = _sklearn(gt, pred)
    assert set(got) == set(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-12), k


def test_refusals(csvs):
    tmp, gt, pred = csvs
    bad = tmp / 'res.csv'  # the labeler's input, not its output
    bad.write_text('"report one"\n"report two"\n')
    with pytest.raises(ValueError, match=r'res\.csv lacks columns'):
        read_labeled_csv(bad)
    empty = tmp / 'empty.csv'
    empty.write_text('Reports,' + ','.join(CATEGORIES) + '\n')
    with pytest.raises(ValueError, match='has no rows'):
        read_labeled_csv(empty)
    _write(tmp / 'short.csv', pred[:5], seed=4)
    with pytest.raises(ValueError, match='5 generated but 40 reference'):
        score_labeled_csvs(tmp / 'short.csv', tmp / 'gts_labeled.csv')


def test_compute_ce_cli_prints_the_scores(csvs):
    tmp, gt, pred = csvs
    proc = run_tool([
        ROOT / 'tools/report/compute_ce.py', tmp / 'res_labeled.csv',
        tmp / 'gts_labeled.csv'
    ],
                    cwd=tmp)
    assert json.loads(proc.stdout) == score_labeled_csvs(
        tmp / 'res_labeled.csv', tmp / 'gts_labeled.csv')
