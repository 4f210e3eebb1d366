# Copyright (c) mmext contributors. All rights reserved.
"""Clinical efficacy (CheXpert-14 label agreement) of generated reports."""
import csv
import math
import os
import os.path as osp

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmext.evaluation.chexpert import CATEGORIES, label_reports
from mmext.registry import METRICS
from .report_metrics import report_pair, resolve_out_dir

__all__ = ['ClinicalEfficacyMetric', 'clinical_scores', 'write_labeler_csv']


def _binary(labels):
    """CheXpert labels -> 0/1 matrix the R2Gen way: blank and -1 -> 0."""
    arr = np.array(
        [[0 if (isinstance(v, float) and math.isnan(v)) else v for v in row]
         for row in labels],
        dtype=np.int64)
    arr[arr == -1] = 0
    return arr


def clinical_scores(gt_labels, pred_labels):
    """Precision / recall / F1, macro and micro, over the 14 labels.

    Args:
        gt_labels, pred_labels (list[list[float]]): CheXpert label rows
            (1, 0, -1 or nan) in :data:`CATEGORIES` order.

    Returns:
        dict: ``P_macro``, ``R_macro``, ``F1_macro``, ``P_micro``,
        ``R_micro``, ``F1_micro``; a label never predicted (never true)
        contributes precision (recall) 0, as sklearn with
        ``zero_division=0`` does in R2Gen's ``compute_mlc``.
    """
    gt, pred = _binary(gt_labels), _binary(pred_labels)
    tp = (gt & pred).sum(0)
    fp = ((1 - gt) & pred).sum(0)
    fn = (gt & (1 - pred)).sum(0)

    def ratio(a, b):
        return np.where(b > 0, a / np.maximum(b, 1), 0.0)

    p, r = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    tp_s, fp_s, fn_s = tp.sum(), fp.sum(), fn.sum()
    return dict(
        P_macro=float(p.mean()),
        R_macro=float(r.mean()),
        F1_macro=float(f1.mean()),
        P_micro=float(ratio(tp_s, tp_s + fp_s)),
        R_micro=float(ratio(tp_s, tp_s + fn_s)),
        F1_micro=float(ratio(2 * tp_s, 2 * tp_s + fp_s + fn_s)))


def write_labeler_csv(reports, path, labels=None):
    """Write ``reports`` in the official CheXpert labeler's input format
    (one report per row, no header). With ``labels``, write its output
    format instead (``Reports`` + the 14 label columns, blanks empty)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', newline='') as f:
        writer = csv.writer(
            f,
            quoting=csv.QUOTE_NONNUMERIC
            if labels is None else csv.QUOTE_MINIMAL)
        if labels is None:
            writer.writerows([r] for r in reports)
            return
        writer.writerow(['Reports'] + CATEGORIES)
        for report, row in zip(reports, labels):
            writer.writerow([report] + [
                '' if
                (isinstance(v, float) and math.isnan(v)) else f'{float(v):.1f}'
                for v in row
            ])


@METRICS.register_module()
class ClinicalEfficacyMetric(BaseMetric):
    """Clinical efficacy: CheXpert-14 labels of generated vs reference
    reports, P/R/F1 macro and micro.

    The CE metric of R2Gen (Chen et al., EMNLP 2020) and R2GenCMN (Chen et
    al., ACL 2021): both reports are labelled with the CheXpert labeler
    (Irvin et al., AAAI 2019), blanks and uncertain (-1) count as 0, and
    precision / recall / F1 compare the 14 binary labels (R2GenCMN reports
    macro; micro is also given because papers mix the two). Upstream ships
    no labeler, so its CE numbers depend on an external Java/NegBio setup;
    this metric labels with mmext's pure-Python labeler
    (:mod:`mmext.evaluation.chexpert`) and also writes ``res.csv`` /
    ``gts.csv`` in the official labeler's input format (and ``*_labeled``
    files with mmext's labels) for cross-checking.

    Args:
        out_dir (str, optional): Folder for the CSV files (``'auto'``: the
            run's log folder). Default None.
        collect_device (str): 'cpu' or 'gpu'. Default 'cpu'.
        prefix (str): Metric name prefix. Default 'ce'.

    Example:
        >>> m = ClinicalEfficacyMetric()
        >>> m.process(None, [dict(pred_report='the heart is enlarged .',
        ...                       gt_report='there is cardiomegaly .')])
        >>> m.evaluate(1)['ce/F1_micro']
        1.0
    """

    default_prefix = 'ce'

    def __init__(self, out_dir=None, collect_device='cpu', prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.out_dir = out_dir

    def process(self, data_batch, data_samples):
        for sample in data_samples:
            pair = report_pair(sample, 'ClinicalEfficacyMetric')
            self.results.append((pair['gt_report'], pair['pred_report']))

    def metric_keys(self):
        """Keys of ``compute_metrics`` (no prefix), for ``tools/hpo.py``."""
        return [
            'P_macro', 'R_macro', 'F1_macro', 'P_micro', 'R_micro', 'F1_micro'
        ]

    def compute_metrics(self, results):
        gts = [g for g, _ in results]
        res = [r for _, r in results]
        gt_labels, pred_labels = label_reports(gts), label_reports(res)
        out_dir = resolve_out_dir(self.out_dir)
        if out_dir:
            write_labeler_csv(res, osp.join(out_dir, 'res.csv'))
            write_labeler_csv(gts, osp.join(out_dir, 'gts.csv'))
            write_labeler_csv(res, osp.join(out_dir, 'res_labeled.csv'),
                              pred_labels)
            write_labeler_csv(gts, osp.join(out_dir, 'gts_labeled.csv'),
                              gt_labels)
            print_log(
                f'ClinicalEfficacyMetric: wrote res.csv / gts.csv '
                f'(CheXpert labeler input) to {out_dir}',
                logger='current')
        return clinical_scores(gt_labels, pred_labels)
