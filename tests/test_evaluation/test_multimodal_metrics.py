# Copyright (c) mmext contributors. All rights reserved.
"""Multimodal task metrics against scikit-learn on fixed predictions."""
import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator

from mmext.evaluation.metrics.multimodal import (
    AUROC, BinaryClassificationMetric, MultiLabelClassificationMetric,
    binary_auroc, multilabel_auroc)
from mmext.registry import METRICS

metrics = pytest.importorskip('sklearn.metrics')

RNG = np.random.default_rng(20260)


def _binary_data(n=200, quantise=True):
    gt = RNG.integers(0, 2, n)
    prob = np.clip(0.5 + 0.3 * (gt - 0.5) + RNG.normal(0, 0.25, n), 0, 1)
    if quantise:  # many ties, some exactly at the threshold
        prob = np.round(prob * 10) / 10
    return prob, gt


def _multilabel_data(n=120, c=23):
    gt = (RNG.random((n, c)) < RNG.uniform(0.05, 0.4, c)).astype(np.int64)
    gt[0, :] = 1  # every label has a positive and a negative
    gt[1, :] = 0
    score = np.clip(0.35 * gt + RNG.random((n, c)) * 0.7, 0, 1)
    score = np.round(score, 2)
    return score, gt


def test_binary_auroc_matches_sklearn_with_ties():
    for quantise in (False, True):
        prob, gt = _binary_data(quantise=quantise)
        assert binary_auroc(prob, gt) == pytest.approx(
            metrics.roc_auc_score(gt, prob), abs=1e-12)
    assert np.isnan(binary_auroc([0.1, 0.4], [1, 1]))
    with pytest.raises(ValueError, match='nan or inf'):
        binary_auroc([0.1, float('nan')], [0, 1])


@pytest.mark.parametrize('two_columns', [False, True])
def test_hateful_memes_metric_matches_sklearn(two_columns):
    prob, gt = _binary_data()
    samples = []
    for p, y in zip(prob, gt):
        score = torch.tensor([1 - p, p] if two_columns else [p])
        samples.append(dict(pred_score=score, gt_label=torch.tensor([y])))
    ev = Evaluator([
        BinaryClassificationMetric(
            items=('accuracy', 'auroc', 'f1-macro', 'f1-positive', 'precision',
                   'recall')),
        AUROC()
    ])
    ev.process(samples[:77])
    ev.process(samples[77:])
    out = ev.evaluate(len(samples))
    pred = (prob > 0.5).astype(int)  # strictly above, as the thesis code
    assert (prob == 0.5).any()  # the rule is exercised
    expect = {
        'binary/accuracy': metrics.accuracy_score(gt, pred),
        'binary/auroc': metrics.roc_auc_score(gt, prob),
        'binary/f1-macro': metrics.f1_score(gt, pred, average='macro'),
        'binary/f1-positive': metrics.f1_score(gt, pred),
        'binary/precision': metrics.precision_score(gt, pred),
        'binary/recall': metrics.recall_score(gt, pred),
        'auroc/auroc': metrics.roc_auc_score(gt, prob),
    }
    assert out.keys() == expect.keys()
    for k, v in expect.items():
        assert out[k] == pytest.approx(100 * v, abs=1e-9), k


def test_binary_metric_refuses_bad_input():
    with pytest.raises(ValueError, match='unknown items'):
        BinaryClassificationMetric(items=('auc', ))
    m = BinaryClassificationMetric()
    with pytest.raises(ValueError, match='expected 1'):
        m.process(None, [dict(pred_score=torch.rand(3), gt_label=1)])
    with pytest.raises(ValueError, match='not 0 or 1'):
        m.process(None, [dict(pred_score=torch.rand(1), gt_label=2)])


def test_mmimdb_metric_matches_sklearn():
    score, gt = _multilabel_data()
    samples = []
    for i, (s, y) in enumerate(zip(score, gt)):
        sample = dict(pred_score=torch.tensor(s, dtype=torch.float32))
        if i % 2:  # both ground-truth forms: indices and multi-hot
            sample['gt_label'] = torch.tensor(np.flatnonzero(y))
        else:
            sample['gt_score'] = torch.tensor(y)
        samples.append(sample)
    ev = Evaluator([MultiLabelClassificationMetric(), AUROC()])
    ev.process(samples)
    out = ev.evaluate(len(samples))
    pred = (score.astype(np.float32) > 0.5).astype(int)
    expect = {
        f'multi-label/f1-{avg}':
        metrics.f1_score(gt, pred, average=avg, zero_division=0)
        for avg in ('micro', 'macro', 'weighted', 'samples')
    }
    expect['multi-label/auroc'] = metrics.roc_auc_score(
        gt, score.astype(np.float32), average='macro')
    expect['auroc/auroc'] = expect['multi-label/auroc']
    expect['multi-label/hamming-accuracy'] = 1 - metrics.hamming_loss(gt, pred)
    assert out.keys() == expect.keys()
    for k, v in expect.items():
        # mmpretrain's micro / macro F1 are computed in float32
        assert out[k] == pytest.approx(100 * v, abs=1e-4), k


def test_f1_samples_with_empty_label_sets_matches_sklearn():
    gt = np.array([[0, 0, 0], [1, 0, 1], [0, 1, 0], [0, 0, 0]])
    pred = np.array([[0, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]])
    m = MultiLabelClassificationMetric(items=('f1-samples', 'f1-weighted'))
    m.process(None, [
        dict(
            pred_score=torch.tensor(p, dtype=torch.float),
            gt_score=torch.tensor(y)) for p, y in zip(pred, gt)
    ])
    out = m.evaluate(4)
    for avg in ('samples', 'weighted'):
        assert out[f'multi-label/f1-{avg}'] == pytest.approx(
            100 * metrics.f1_score(gt, pred, average=avg, zero_division=0))


def test_auroc_skips_single_class_labels_with_warning(capsys):
    score, gt = _multilabel_data(c=5)
    gt[:, 3] = 0  # sklearn raises on such a label; we leave it out
    value, undefined = multilabel_auroc(score, gt)
    assert undefined == [3]
    keep = [0, 1, 2, 4]
    assert value == pytest.approx(
        metrics.roc_auc_score(gt[:, keep], score[:, keep], average='macro'))
    per_label, _ = multilabel_auroc(score, gt, average=None)
    assert np.isnan(per_label[3]) and not np.isnan(per_label[keep]).any()


def test_food101_reuses_mmpretrain_accuracy_and_f1_macro():
    n, c = 300, 101
    gt = RNG.integers(0, c, n)
    logits = RNG.normal(size=(n, c))
    logits[np.arange(n), gt] += RNG.normal(1.5, 1.0, n)
    prob = torch.softmax(torch.tensor(logits), 1).float()
    samples = [
        dict(pred_score=p, gt_label=torch.tensor([y]))
        for p, y in zip(prob, gt)
    ]
    # as a config with default_scope='mmext' builds them
    ev = Evaluator([
        METRICS.build(dict(type='Accuracy', topk=1)),
        METRICS.build(
            dict(
                type='SingleLabelMetric',
                items=('f1-score', ),
                average='macro'))
    ])
    ev.process(samples)
    out = ev.evaluate(n)
    pred = prob.argmax(1).numpy()
    assert out['accuracy/top1'] == pytest.approx(
        100 * metrics.accuracy_score(gt, pred), abs=1e-4)
    # sklearn over the classes that occur in gt or pred; mmpretrain over
    # all 101: equal when every class occurs
    labels = np.arange(c)
    assert out['single-label/f1-score'] == pytest.approx(
        100 * metrics.f1_score(
            gt, pred, labels=labels, average='macro', zero_division=0),
        abs=1e-3)
