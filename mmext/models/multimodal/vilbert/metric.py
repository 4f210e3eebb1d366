# Copyright (c) mmext contributors. All rights reserved.
"""Validation numbers for ViLBERT pre-training (ITM and MLM accuracy)."""
from typing import List, Sequence

from mmengine.evaluator import BaseMetric

from mmext.registry import METRICS

__all__ = ['ViLBERTPretrainMetric']


@METRICS.register_module()
class ViLBERTPretrainMetric(BaseMetric):
    """``itm_accuracy`` (matched-probability > 0.5 vs label, %) and
    ``mlm_accuracy`` (top-1 over masked tokens, %) from
    ``ViLBERT.predict`` outputs. mmpretrain has no pre-training metric for
    image-text models; this lets ``tools/test.py`` score a checkpoint."""

    default_prefix = 'pretrain'

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        self.results.extend(data_samples)

    def compute_metrics(self, results: List[dict]) -> dict:
        metrics = {}
        itm = [r for r in results if 'itm_label' in r]
        if itm:
            hits = sum(
                (r['itm_score'] > 0.5) == bool(r['itm_label']) for r in itm)
            metrics['itm_accuracy'] = 100.0 * hits / len(itm)
        count = sum(r.get('mlm_count', 0) for r in results)
        if count:
            metrics['mlm_accuracy'] = 100.0 * sum(
                r.get('mlm_hits', 0) for r in results) / count
        return metrics
