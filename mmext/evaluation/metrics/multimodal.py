# Copyright (c) mmext contributors. All rights reserved.
"""Metrics of the ViLBERT fine-tuning tasks: AUROC, binary and multi-label.

Hateful Memes (Kiela et al., NeurIPS 2020) is scored by AUROC, accuracy and
F1-macro; MM-IMDb (Arevalo et al., ICLR-W 2017) by F1 micro / macro /
weighted / samples and macro AUROC; UPMC Food-101 (Wang et al., ICME-W
2015) by top-1 accuracy and F1-macro, for which mmpretrain's ``Accuracy``
and ``SingleLabelMetric(average='macro')`` are already right (see
``data/README.md`` for the evaluator configs).

What mmpretrain 1.2 lacks and is added here: AUROC (any kind), F1
'weighted' and 'samples' (its ``MultiLabelMetric`` averages 'macro' and
'micro' only), and binary scores from a one-logit sigmoid head (its
``Accuracy`` / ``SingleLabelMetric`` take the argmax of ``pred_score``,
which is always class 0 when the score has one column).

All values are percentages, as in mmpretrain's metrics. A prediction is
positive when its probability is *above* ``thr`` (the ViLBERT thesis code's
``p > 0.5``; mmpretrain uses ``>=``).
"""
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmpretrain.evaluation.metrics import MultiLabelMetric
from mmpretrain.structures import label_to_onehot

from mmext.registry import METRICS

__all__ = [
    'AUROC', 'BinaryClassificationMetric', 'MultiLabelClassificationMetric',
    'binary_auroc', 'multilabel_auroc', 'multilabel_f1'
]


def _average_ranks(values):
    """1-based ranks of ``values``, ties sharing their mean rank."""
    order = np.argsort(values, kind='mergesort')
    ordered = values[order]
    first = np.r_[True, ordered[1:] != ordered[:-1]]
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(values)]
    group_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = group_rank[np.cumsum(first) - 1]
    return ranks


def binary_auroc(scores, labels):
    """Area under the ROC curve of one binary problem.

    Computed as the Mann-Whitney U statistic (a positive outscoring a
    negative counts 1, a tie 1/2), which equals the trapezoidal area under
    the ROC curve that scikit-learn's ``roc_auc_score`` integrates.

    Args:
        scores (array-like): (N, ) scores, higher = more positive.
        labels (array-like): (N, ) 0/1 ground truth.

    Returns:
        float: AUROC in [0, 1], or nan when only one class is present.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(bool)
    if scores.shape != labels.shape:
        raise ValueError(f'AUROC: {scores.size} scores for {labels.size} '
                         'labels')
    if not np.isfinite(scores).all():
        raise ValueError('AUROC: the scores contain nan or inf; check the '
                         "model's outputs")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float('nan')
    rank_sum = _average_ranks(scores)[labels].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def multilabel_auroc(scores, targets, average='macro'):
    """Per-label AUROC of (N, C) scores against (N, C) 0/1 targets.

    Args:
        scores, targets (array-like): (N, C).
        average (str | None): 'macro' (mean over the labels where both
            classes occur) or None (per label, nan where undefined).
            Defaults to 'macro'.

    Returns:
        tuple: (float or np.ndarray, list of label indices skipped because
        only one class occurs in ``targets``). scikit-learn raises a
        ValueError for those instead.
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets)
    per_label = np.array([
        binary_auroc(scores[:, c], targets[:, c])
        for c in range(scores.shape[1])
    ])
    undefined = np.flatnonzero(np.isnan(per_label)).tolist()
    if average is None:
        return per_label, undefined
    if average != 'macro':
        raise ValueError(f"AUROC: average must be 'macro' or None, got "
                         f'{average!r}')
    defined = per_label[~np.isnan(per_label)]
    value = float(defined.mean()) if defined.size else float('nan')
    return value, undefined


def multilabel_f1(pred_pos, targets):
    """F1 averaged 'micro', 'macro', 'weighted' and 'samples' (in %).

    'micro' and 'macro' come from mmpretrain's ``MultiLabelMetric``;
    'weighted' weights the per-label F1 by the label's support and
    'samples' averages the F1 of each sample's label set, as scikit-learn's
    ``f1_score`` does (0 where undefined, its ``zero_division`` default).

    Args:
        pred_pos, targets (torch.Tensor): (N, C) 0/1.

    Returns:
        dict: ``f1-micro``, ``f1-macro``, ``f1-weighted``, ``f1-samples``.
    """
    pred_pos = pred_pos.float()
    targets = targets.long()

    def upstream(average):
        # a binary "score" thresholded at 0.5 keeps our own threshold rule
        _, _, f1, _ = MultiLabelMetric.calculate(
            pred_pos,
            targets,
            pred_indices=False,
            target_indices=False,
            average=average,
            thr=0.5)
        return f1

    per_label = upstream(None)
    support = targets.sum(0).float()
    weighted = (per_label * support).sum() / support.sum() \
        if support.sum() > 0 else torch.tensor(0.)
    pred_b, gt_b = pred_pos.long(), targets
    tp = (pred_b & gt_b).sum(1).float()
    denom = (pred_b.sum(1) + gt_b.sum(1)).float()
    per_sample = torch.where(denom > 0, 2 * tp / denom.clamp(min=1),
                             torch.zeros_like(tp))
    return {
        'f1-micro': float(upstream('micro')),
        'f1-macro': float(upstream('macro')),
        'f1-weighted': float(weighted),
        'f1-samples': float(per_sample.mean() * 100),
    }


def _gt_onehot(sample, num_classes):
    if 'gt_score' in sample:
        return torch.as_tensor(sample['gt_score']).reshape(-1).clone()
    return label_to_onehot(sample['gt_label'], num_classes)


def _positive_probability(score):
    """Probability of the positive class from a (), (1, ) or (2, ) score."""
    score = torch.as_tensor(score).detach().float().reshape(-1)
    if score.numel() == 1:
        return float(score[0])
    if score.numel() == 2:
        return float(score[1])
    raise ValueError(
        f'BinaryClassificationMetric: pred_score has {score.numel()} '
        'values; expected 1 (sigmoid probability) or 2 (softmax over '
        '[negative, positive])')


def _warn_undefined(name, undefined, classes=None):
    if undefined:
        names = [classes[c] if classes else c for c in undefined[:5]]
        print_log(
            f'{name}: AUROC undefined for {len(undefined)} label(s) '
            f'with one class only in the ground truth ({names}); '
            'averaged over the others',
            logger='current',
            level=30)


@METRICS.register_module()
class AUROC(BaseMetric):
    """Area under the ROC curve, binary or multi-label (macro).

    mmpretrain 1.2 has no AUROC. Binary when each ``pred_score`` has one
    value (a sigmoid probability) or two (softmax over [negative,
    positive]) and ``gt_label`` is 0/1; multi-label (one AUROC per column,
    then averaged) when ``pred_score`` has more columns and the ground
    truth is ``gt_score`` (multi-hot) or ``gt_label`` (indices). Labels
    whose ground truth has one class only are left out of the average with
    a warning (scikit-learn raises). Ties count 1/2, as in scikit-learn.

    Args:
        average (str | None): 'macro' or None (per-label list).
            Defaults to 'macro'.
        collect_device (str): 'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Defaults to None ('auroc' ... see
            ``default_prefix``).

    Example:
        >>> import torch
        >>> m = AUROC()
        >>> m.process(None, [dict(pred_score=torch.tensor([p]), gt_label=y)
        ...                  for p, y in [(.9, 1), (.2, 0), (.6, 0)]])
        >>> m.evaluate(3)
        {'auroc/auroc': 100.0}
    """

    default_prefix = 'auroc'

    def __init__(self,
                 average: Optional[str] = 'macro',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        if average not in ('macro', None):
            raise ValueError(f"AUROC: average must be 'macro' or None, got "
                             f'{average!r}')
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.average = average

    def process(self, data_batch, data_samples: Sequence[dict]):
        for sample in data_samples:
            score = torch.as_tensor(sample['pred_score']).detach().cpu()
            score = score.float().reshape(-1)
            if score.numel() <= 2:
                gt = torch.as_tensor(sample['gt_label']).reshape(-1)
                self.results.append(
                    (torch.tensor([_positive_probability(score)]), gt[:1]))
            else:
                self.results.append((score, _gt_onehot(sample, score.numel())))

    def metric_keys(self):
        """Keys of ``compute_metrics`` (no prefix), for ``tools/hpo.py``."""
        return ['auroc'] if self.average == 'macro' else []

    def compute_metrics(self, results):
        scores = torch.stack([s for s, _ in results]).numpy()
        targets = torch.stack([t for _, t in results]).numpy()
        value, undefined = multilabel_auroc(scores, targets, self.average)
        _warn_undefined('AUROC', undefined)
        if self.average is None:
            return {'auroc_classwise': (value * 100).tolist()}
        return {'auroc': value * 100}


@METRICS.register_module()
class BinaryClassificationMetric(BaseMetric):
    """Accuracy, AUROC and F1-macro of a binary classifier (Hateful Memes).

    The Hateful Memes challenge ranks by AUROC and also reports accuracy;
    the ViLBERT thesis code adds F1-macro (the mean F1 of the negative and
    the positive class). ``pred_score`` may hold one sigmoid probability or
    two softmax scores (mmpretrain's metrics need the latter); a sample is
    predicted positive when its positive probability is above ``thr``.

    Args:
        thr (float): Decision threshold on the positive probability.
            Defaults to 0.5.
        items (Sequence[str]): Any of 'accuracy', 'auroc', 'f1-macro',
            'f1-positive', 'precision', 'recall' (the last three of the
            positive class). Defaults to ('accuracy', 'auroc', 'f1-macro').
        collect_device (str): Defaults to 'cpu'.
        prefix (str, optional): Defaults to None ('binary').

    Example:
        >>> import torch
        >>> m = BinaryClassificationMetric()
        >>> m.process(None, [dict(pred_score=torch.tensor([p]), gt_label=y)
        ...                  for p, y in [(.9, 1), (.2, 0), (.6, 0)]])
        >>> {k: round(v, 1) for k, v in m.evaluate(3).items()}
        {'binary/accuracy': 66.7, 'binary/auroc': 100.0, \
'binary/f1-macro': 66.7}
    """

    default_prefix = 'binary'
    ITEMS = ('accuracy', 'auroc', 'f1-macro', 'f1-positive', 'precision',
             'recall')

    def __init__(self,
                 thr: float = 0.5,
                 items: Sequence[str] = ('accuracy', 'auroc', 'f1-macro'),
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        unknown = set(items) - set(self.ITEMS)
        if unknown:
            raise ValueError(f'BinaryClassificationMetric: unknown items '
                             f'{sorted(unknown)}; choose from {self.ITEMS}')
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.thr = thr
        self.items = tuple(items)

    def process(self, data_batch, data_samples: Sequence[dict]):
        for sample in data_samples:
            gt = int(torch.as_tensor(sample['gt_label']).reshape(-1)[0])
            if gt not in (0, 1):
                raise ValueError(f'BinaryClassificationMetric: gt_label '
                                 f'{gt} is not 0 or 1')
            self.results.append(
                (_positive_probability(sample['pred_score']), gt))

    def metric_keys(self):
        """Keys of ``compute_metrics`` (no prefix), for ``tools/hpo.py``."""
        return list(self.items)

    def compute_metrics(self, results):
        prob = np.array([p for p, _ in results], dtype=np.float64)
        gt = np.array([g for _, g in results], dtype=np.int64)
        pred = (prob > self.thr).astype(np.int64)
        f1 = []
        for cls in (0, 1):
            tp = np.sum((pred == cls) & (gt == cls))
            denom = np.sum(pred == cls) + np.sum(gt == cls)
            f1.append(2 * tp / denom if denom else 0.0)
        tp = np.sum(pred & gt)
        values = {
            'accuracy': float(np.mean(pred == gt)),
            'auroc': binary_auroc(prob, gt),
            'f1-macro': float(np.mean(f1)),
            'f1-positive': float(f1[1]),
            'precision': float(tp / max(pred.sum(), 1)),
            'recall': float(tp / max(gt.sum(), 1)),
        }
        if np.isnan(values['auroc']) and 'auroc' in self.items:
            print_log(
                'BinaryClassificationMetric: AUROC undefined, the '
                'ground truth has one class only',
                logger='current',
                level=30)
        return {k: values[k] * 100 for k in self.items}


@METRICS.register_module()
class MultiLabelClassificationMetric(BaseMetric):
    """F1 (micro, macro, weighted, samples), macro AUROC and Hamming
    accuracy of a multi-label classifier (MM-IMDb genres).

    MM-IMDb papers report F1 micro / macro / weighted / samples (Arevalo et
    al. 2017; MMBT, Kiela et al. 2019); the ViLBERT thesis code reports
    macro F1, macro AUROC and Hamming accuracy (its early-stopping
    criterion). mmpretrain's ``MultiLabelMetric`` gives micro and macro F1
    only (it is used for those); the rest is added here. A label is
    predicted when its score is above ``thr``.

    Args:
        thr (float): Threshold on each label's probability.
            Defaults to 0.5.
        items (Sequence[str]): Any of 'f1-micro', 'f1-macro',
            'f1-weighted', 'f1-samples', 'auroc', 'hamming-accuracy'.
            Defaults to all.
        classes (Sequence[str], optional): Label names, for warnings.
            Defaults to None.
        collect_device (str): Defaults to 'cpu'.
        prefix (str, optional): Defaults to None ('multi-label').

    Example:
        >>> import torch
        >>> m = MultiLabelClassificationMetric(items=('f1-micro',))
        >>> m.process(None, [
        ...     dict(pred_score=torch.tensor([.9, .1, .8]), gt_label=[0, 2]),
        ...     dict(pred_score=torch.tensor([.2, .7, .1]), gt_label=[1])])
        >>> m.evaluate(2)
        {'multi-label/f1-micro': 100.0}
    """

    default_prefix = 'multi-label'
    ITEMS = ('f1-micro', 'f1-macro', 'f1-weighted', 'f1-samples', 'auroc',
             'hamming-accuracy')

    def __init__(self,
                 thr: float = 0.5,
                 items: Sequence[str] = ITEMS,
                 classes: Optional[Sequence[str]] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        unknown = set(items) - set(self.ITEMS)
        if unknown:
            raise ValueError(f'MultiLabelClassificationMetric: unknown '
                             f'items {sorted(unknown)}; choose from '
                             f'{self.ITEMS}')
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.thr = thr
        self.items = tuple(items)
        self.classes = classes

    def process(self, data_batch, data_samples: Sequence[dict]):
        for sample in data_samples:
            score = torch.as_tensor(sample['pred_score']).detach().cpu()
            score = score.float().reshape(-1)
            self.results.append((score, _gt_onehot(sample, score.numel())))

    def metric_keys(self):
        """Keys of ``compute_metrics`` (no prefix), for ``tools/hpo.py``."""
        return list(self.items)

    def compute_metrics(self, results):
        scores = torch.stack([s for s, _ in results])
        targets = torch.stack([t for _, t in results]).long()
        if scores.shape != targets.shape:
            raise ValueError(f'MultiLabelClassificationMetric: scores '
                             f'{tuple(scores.shape)} vs ground truth '
                             f'{tuple(targets.shape)}')
        pred_pos = (scores > self.thr).long()
        values = multilabel_f1(pred_pos, targets)
        values['hamming-accuracy'] = float(
            (pred_pos == targets).float().mean() * 100)
        if 'auroc' in self.items:
            auroc, undefined = multilabel_auroc(scores.numpy(),
                                                targets.numpy())
            _warn_undefined('MultiLabelClassificationMetric', undefined,
                            self.classes)
            values['auroc'] = auroc * 100
        return {k: values[k] for k in self.items}
