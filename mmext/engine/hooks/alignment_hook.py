# Copyright (c) mmext contributors. All rights reserved.
"""Measure layer-by-layer representation alignment during training."""
import json
import os
import os.path as osp

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmext.registry import HOOKS

__all__ = ['AlignmentHook']


@HOOKS.register_module()
class AlignmentHook(Hook):
    """After every ``interval`` validation epochs, record the taps' outputs
    on the validation loader, score the layer pairs and log them.

    The thesis code measured ViLBERT's text / vision alignment after each
    epoch in its own loop; this hook does it in any mmengine run, with the
    same collection as ``tools/analysis_tools/alignment.py``. It adds
    ``alignment/{metric}/mean`` (and each pair with ``log_pairs``) to the
    epoch's validation metrics (so they are logged, and usable by
    ``save_best`` or ``tools/hpo.py --metric``) and writes
    ``{work_dir}/alignment/epoch_{e}.json``.

    Args:
        layers (list[str], optional): Tap specs of side a. Defaults to the
            text side of a two-stream model, else every backbone block.
        layers2 (list[str], optional): Side b. Defaults to ``layers``.
        metrics (Sequence[str]): Defaults to ``('mutual_knn',
            'linear_cka')``.
        pairs (str): ``'matched'`` or ``'all'``. Defaults to ``'matched'``.
        pooling (str): ``'auto'`` (feature maps: mean over space; token
            sequences: the CLS token when they start with one, else the
            mean), ``'cls'`` or ``'mean'``. Defaults to ``'auto'``.
        max_samples (int): Validation samples used. Defaults to 1024 (the
            thesis' N).
        interval (int): Validation epochs between measurements.
            Defaults to 1.
        log_pairs (bool): Log every pair's value too. Defaults to False.
        **compare_kwargs: ``k``, ``normalize``, ... of ``compare_layers``.

    Example:
        >>> custom_hooks = [dict(type='AlignmentHook', pairs='all',
        ...                      layers=['backbone.layers.0-11'])]
    """

    # before LoggerHook (BELOW_NORMAL), so the values are in the epoch's log
    priority = 'NORMAL'

    def __init__(self,
                 layers=None,
                 layers2=None,
                 metrics=('mutual_knn', 'linear_cka'),
                 pairs='matched',
                 pooling='auto',
                 max_samples=1024,
                 interval=1,
                 log_pairs=False,
                 **compare_kwargs):
        self.layers, self.layers2 = layers, layers2
        self.metrics = tuple(metrics)
        self.pairs = pairs
        self.pooling = pooling
        self.max_samples = max_samples
        self.interval = interval
        self.log_pairs = log_pairs
        self.compare_kwargs = compare_kwargs
        self._count = 0

    def after_val_epoch(self, runner, metrics=None):
        from mmext.analysis import collect_sides, model_taps
        from mmext.evaluation.metrics.alignment import compare_layers
        self._count += 1
        if self._count % self.interval or runner.rank != 0:
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        taps_a, taps_b = model_taps(model, self.layers, self.layers2)
        feats_a, feats_b, ids = collect_sides(
            model,
            runner.val_dataloader,
            taps_a,
            taps_b,
            self.pooling,
            self.max_samples,
            progress=False)
        records = compare_layers(feats_a, feats_b, self.metrics, self.pairs,
                                 **self.compare_kwargs)
        scores = {}
        for m in self.metrics:
            vals = [r[m] for r in records]
            scores[f'alignment/{m}/mean'] = sum(vals) / len(vals)
            if self.log_pairs:
                for r in records:
                    scores[f'alignment/{m}/{r["layer_a"]}~{r["layer_b"]}'] \
                        = r[m]
        for key, value in scores.items():
            runner.message_hub.update_scalar(f'val/{key}', value)
        if metrics is not None:
            metrics.update(scores)
        out = osp.join(runner.work_dir, 'alignment')
        os.makedirs(out, exist_ok=True)
        with open(osp.join(out, f'epoch_{runner.epoch}.json'), 'w') as f:
            json.dump(
                dict(
                    epoch=runner.epoch, num_samples=len(ids), records=records),
                f,
                indent=1)
