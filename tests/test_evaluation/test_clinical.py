# Copyright (c) mmext contributors. All rights reserved.
import csv
import math

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from mmext.evaluation.chexpert import CATEGORIES, label_report
from mmext.evaluation.metrics import ClinicalEfficacyMetric
from mmext.evaluation.metrics.clinical import clinical_scores
from tests.conftest import ROOT, TEST_DATA

HANDLABELS = str(TEST_DATA / 'chexpert_handlabels.json')
IDX = {c: i for i, c in enumerate(CATEGORIES)}


@pytest.mark.parametrize(
    'report,category,value',
    [
        # positive beats negative, uncertain beats negative
        ('No effusion on the left. Small right pleural effusion.',
         'Pleural Effusion', 1),
        ('No pneumothorax. Pneumothorax cannot be excluded.', 'Pneumothorax',
         -1),
        ('No pneumothorax.', 'Pneumothorax', 0),
        ('Lungs are clear.', 'Pneumothorax', math.nan),
        # chf makes Cardiomegaly uncertain (official exception)
        ('Findings consistent with CHF.', 'Cardiomegaly', -1),
        # No Finding ignores support devices, not other findings
        ('Endotracheal tube in place. No pneumothorax.', 'No Finding', 1),
        ('Mild scoliosis.', 'No Finding', math.nan),
        ('Possible small effusion.', 'No Finding', math.nan),
    ])
def test_aggregation_rules(report, category, value):
    got = label_report(report)[IDX[category]]
    if isinstance(value, float) and math.isnan(value):
        assert math.isnan(got)
    else:
        assert got == value


def test_scores_match_sklearn_macro_and_micro():
    rng = np.random.default_rng(0)
    choices = np.array([1, 0, -1, np.nan])
    gt = rng.choice(choices, (30, 14)).tolist()
    pred = rng.choice(choices, (30, 14)).tolist()
    got = clinical_scores(gt, pred)

    def binary(rows):  # R2Gen's compute_ce: fillna(0), -1 -> 0
        a = np.nan_to_num(np.array(rows, dtype=float), nan=0.0)
        return (a == 1).astype(int)

    for avg in ('macro', 'micro'):
        p, r, f, _ = precision_recall_fscore_support(
            binary(gt), binary(pred), average=avg, zero_division=0)
        assert got[f'P_{avg}'] == pytest.approx(p)
        assert got[f'R_{avg}'] == pytest.approx(r)
        assert got[f'F1_{avg}'] == pytest.approx(f)


def test_metric_writes_labeler_csvs(tmp_path):
    metric = ClinicalEfficacyMetric(out_dir=str(tmp_path))
    gts = ['The heart is enlarged, "markedly".', 'No acute disease.']
    res = ['the heart is enlarged .', 'small left pleural effusion .']
    metric.process(
        None, [dict(gt_report=g, pred_report=r) for g, r in zip(gts, res)])
    scores = metric.evaluate(2)
    # gt: Cardiomegaly, No Finding; pred: Cardiomegaly, Pleural Effusion
    # (No Finding absent): tp 1, fp 1, fn 1 -> micro P = R = F1 = 0.5
    assert scores['ce/P_micro'] == pytest.approx(0.5)
    assert scores['ce/F1_micro'] == pytest.approx(0.5)
    assert scores['ce/F1_macro'] == pytest.approx(1 / 14)
    # labeler input: one report per row, no header, quotes escaped
    with open(tmp_path / 'gts.csv') as f:
        assert [row[0] for row in csv.reader(f)] == gts
    with open(tmp_path / 'res_labeled.csv') as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ['Reports'] + CATEGORIES
    assert rows[1]['Pleural Effusion'] == '1.0' and rows[1]['Edema'] == ''


def test_score_labeled_csvs_matches_the_metric(tmp_path):
    """Scores from the labelled CSVs (tools/report/compute_ce.py) equal the
    metric's own."""
    from mmext.evaluation.chexpert.labeled_csv import score_labeled_csvs
    gts = [
        'there is cardiomegaly .', 'small left pleural effusion .',
        'no acute disease .'
    ]
    res = [
        'the heart is enlarged .', 'no pleural effusion .',
        'possible pneumonia .'
    ]
    metric = ClinicalEfficacyMetric(out_dir=str(tmp_path))
    metric.process(
        None, [dict(gt_report=g, pred_report=r) for g, r in zip(gts, res)])
    expected = metric.evaluate(3)
    got = score_labeled_csvs(
        str(tmp_path / 'res_labeled.csv'), str(tmp_path / 'gts_labeled.csv'))
    assert got == {k.split('/')[1]: v for k, v in expected.items()}
    with pytest.raises(ValueError, match='lacks columns'):
        score_labeled_csvs(
            str(tmp_path / 'res.csv'), str(tmp_path / 'gts_labeled.csv'))


def test_mimic_base_config_evaluators_build(tmp_path):
    from mmengine.config import Config
    from mmengine.evaluator import Evaluator

    from mmext.registry import METRICS
    cfg = Config.fromfile(str(ROOT / 'configs/_base_/datasets/mimic_cxr.py'))
    for ev in cfg.test_evaluator:
        ev.out_dir = str(tmp_path)
    evaluator = Evaluator([METRICS.build(ev) for ev in cfg.test_evaluator])
    evaluator.process([
        dict(
            gt_report='the heart is enlarged .',
            pred_report='there is cardiomegaly .',
            study_id='s',
            img_path=['x.jpg'])
    ])
    # one study: identical CheXpert labels, no scorer that needs Java run
    evaluator.metrics[0].scorers = ('rouge', )
    scores = evaluator.evaluate(1)
    assert scores['ce/F1_micro'] == 1.0 and 'report/ROUGE_L' in scores
    assert {'res.csv', 'gts.csv', 'reports.json'} <= set(
        p.name for p in tmp_path.iterdir())
