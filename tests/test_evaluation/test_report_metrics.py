# Copyright (c) mmext contributors. All rights reserved.
import csv
import json
import math
import shutil

import pytest
from mmengine.evaluator import Evaluator
from mmpretrain.structures import DataSample

from mmext.evaluation.metrics import ReportMetric
from mmext.evaluation.metrics.report_metrics import compute_nlg_scores

GTS = ['the heart is normal .', 'no pleural effusion .']
RES = ['the heart is enlarged .', 'no effusion .']


def _hand_bleu_rouge():
    """Worked by hand for GTS / RES.

    unigrams: 4 of 5 and 3 of 3 match -> p1 = 7 / 8; bigrams: 'the heart',
    'heart is' of 4 and 'effusion .' of 2 -> p2 = 3 / 6. Hypothesis length
    8 < reference length 9 -> brevity penalty exp(1 - 9 / 8).
    ROUGE-L (beta 1.2): pair 1 LCS 4 -> P = R = 4 / 5 -> F = 0.8; pair 2
    LCS 3, P = 1, R = 3 / 4 -> F = (1 + b^2) P R / (R + b^2 P).
    """
    bp = math.exp(1 - 9 / 8)
    bleu1 = bp * 7 / 8
    bleu2 = bp * math.sqrt(7 / 8 * 3 / 6)
    b2 = 1.2**2
    rouge = (0.8 + (1 + b2) * 1 * 0.75 / (0.75 + b2 * 1)) / 2
    return bleu1, bleu2, rouge


def test_bleu_rouge_match_hand_computation():
    scores = compute_nlg_scores(GTS, RES, ('bleu', 'rouge'))
    bleu1, bleu2, rouge = _hand_bleu_rouge()
    assert scores['BLEU_1'] == pytest.approx(bleu1, abs=1e-6)
    assert scores['BLEU_2'] == pytest.approx(bleu2, abs=1e-6)
    assert scores['ROUGE_L'] == pytest.approx(rouge, abs=1e-6)
    assert set(scores) == {'BLEU_1', 'BLEU_2', 'BLEU_3', 'BLEU_4', 'ROUGE_L'}


def test_cider_d_perfect_is_ten_and_clips_repeats():
    refs = [
        'the heart is normal .', 'small left pleural effusion .',
        'no pneumothorax is seen .'
    ]
    perfect = compute_nlg_scores(refs, refs, ('cider', ))['CIDEr']
    assert perfect == pytest.approx(10.0, abs=1e-6)
    # CIDEr-D clips hypothesis counts at the reference counts: repeating a
    # matched word cannot raise the score (plain CIDEr's cosine would not
    # clip, and the Gaussian length penalty lowers it further)
    padded = refs[:2] + ['no pneumothorax pneumothorax pneumothorax is seen .']
    assert compute_nlg_scores(refs, padded, ('cider', ))['CIDEr'] < perfect


def test_empty_prediction_scores_zero_not_crash():
    scores = compute_nlg_scores(['lungs are clear .'], [''],
                                ('bleu', 'rouge', 'cider'))
    assert scores['ROUGE_L'] == 0 and scores['CIDEr'] == 0
    assert scores['BLEU_1'] < 1e-6
    with pytest.raises(ValueError, match='2 references but 1 predictions'):
        compute_nlg_scores(GTS, RES[:1])


@pytest.mark.skipif(shutil.which('java') is None, reason='needs java')
def test_full_metric_with_meteor_and_outputs(tmp_path):
    """One METEOR run (the jar takes tens of seconds to start here)."""
    evaluator = Evaluator(ReportMetric(out_dir=str(tmp_path)))
    samples = []
    for i, (g, r) in enumerate(zip(GTS, RES)):
        s = DataSample(
            metainfo=dict(
                gt_report=g,
                pred_report=r,
                study_id=f's{i}',
                img_path=[f's{i}/0.png', f's{i}/1.png']))
        samples.append(s)
    evaluator.process(samples)
    scores = evaluator.evaluate(len(samples))
    bleu1, _, rouge = _hand_bleu_rouge()
    assert scores['report/BLEU_1'] == pytest.approx(bleu1, abs=1e-6)
    assert scores['report/ROUGE_L'] == pytest.approx(rouge, abs=1e-6)
    # partial matches: strictly between 0 and 1
    assert 0.2 < scores['report/METEOR'] < 0.95
    assert 'report/CIDEr' in scores
    rows = json.loads((tmp_path / 'reports.json').read_text())
    assert [r['pred_report'] for r in rows] == RES
    assert rows[1]['img_path'] == ['s1/0.png', 's1/1.png']
    with open(tmp_path / 'reports.csv') as f:
        table = list(csv.DictReader(f))
    assert [r['gt_report'] for r in table] == GTS
    assert table[0]['study_id'] == 's0'


def test_meteor_skipped_with_warning_without_java(monkeypatch, tmp_path):
    monkeypatch.setenv('PATH', str(tmp_path))  # no java on this PATH
    metric = ReportMetric()
    metric.process(
        None, [dict(gt_report=g, pred_report=r) for g, r in zip(GTS, RES)])
    with pytest.warns(UserWarning, match='METEOR skipped: no `java`'):
        scores = metric.evaluate(2)
    assert 'report/METEOR' not in scores
    assert scores['report/BLEU_1'] == pytest.approx(
        _hand_bleu_rouge()[0], abs=1e-6)


def test_metric_input_errors():
    with pytest.raises(ValueError, match="unknown scorers \\['spice'\\]"):
        ReportMetric(scorers=('bleu', 'spice'))
    with pytest.raises(KeyError, match='needs `pred_report`'):
        ReportMetric().process(None, [dict(gt_report='a .')])
