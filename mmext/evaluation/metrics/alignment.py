# Copyright (c) mmext contributors. All rights reserved.
"""Layer-by-layer representation alignment (mutual k-NN, CKA, SVCCA, ...).

:func:`compare_layers` scores every requested pair of layers of two sets of
per-layer representations (two streams of one model, or two models on the
same samples). Per-layer work (normalisation, k-NN lists) is done once per
layer, not once per pair. :class:`RepresentationAlignment` is the mmengine
metric for models that put per-layer vectors into their data samples.
"""
import fnmatch

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric

from mmext.evaluation.functional import alignment as A
from mmext.registry import METRICS

__all__ = [
    'ALIGNMENT_METRICS', 'compare_layers', 'select_layers',
    'RepresentationAlignment'
]

#: metric name -> higher means more aligned (False for distances)
ALIGNMENT_METRICS = {
    'mutual_knn': True,
    'cknna': True,
    'linear_cka': True,
    'linear_cka_unbiased': True,
    'rbf_cka': True,
    'svcca': True,
    'procrustes': False,
}
DEFAULT_METRICS = ('mutual_knn', 'linear_cka', 'svcca')


def _check_metrics(metrics):
    unknown = [m for m in metrics if m not in ALIGNMENT_METRICS]
    if unknown:
        raise ValueError(f'unknown alignment metric(s) {unknown}; choose '
                         f'from {sorted(ALIGNMENT_METRICS)}')


def _pairs(names_a, names_b, pairs):
    if pairs == 'all':
        return [(a, b) for a in names_a for b in names_b]
    if pairs == 'matched':
        if len(names_a) != len(names_b):
            raise ValueError(
                f"pairs='matched' pairs the i-th layers, but there are "
                f'{len(names_a)} and {len(names_b)} layers; use '
                "pairs='all' or list the pairs")
        return list(zip(names_a, names_b))
    out = [tuple(p) for p in pairs]
    missing = {n for p in out for n in p} - set(names_a) - set(names_b)
    if missing:
        raise ValueError(f'pairs name unknown layers {sorted(missing)}')
    return out


class _LayerCache:
    """Per-layer inputs of the metrics (k-NN lists, centred features and
    their self-HSIC, SVCCA bases), computed on first use, so a pair costs
    only its cross terms."""

    def __init__(self, x, normalize, k, chunk_size, svcca_keep):
        x = x.float()
        self.x = F.normalize(x, dim=1) if normalize else x
        self.k = k
        self.chunk_size = chunk_size
        self.svcca_keep = svcca_keep
        self._memo = {}

    def _get(self, key, fn):
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def knn(self):
        return self._get('knn', lambda: A.knn(self.x, self.k, self.chunk_size))

    def centred(self):
        x = self.x
        return self._get('centred', lambda: x - x.double().mean(0).to(x.dtype))

    def hsic(self, unbiased):
        x = self.x if unbiased else self.centred()
        return self._get(('hsic', unbiased),
                         lambda: A.linear_hsic(x, x, unbiased))

    def svcca_basis(self):
        return self._get('svcca',
                         lambda: A.svcca_basis(self.x, self.svcca_keep))


def _linear_cka(ca, cb, unbiased):
    a, b = (ca.x, cb.x) if unbiased else (ca.centred(), cb.centred())
    return (A.linear_hsic(a, b, unbiased) /
            torch.sqrt(ca.hsic(unbiased) * cb.hsic(unbiased))).item()


def _score(metric, ca, cb, rbf_sigma, chunk_size):
    if metric == 'mutual_knn':
        return A.mutual_knn_from_knn(ca.knn()[0], cb.knn()[0])
    if metric == 'cknna':
        return A.cknna_from_knn(ca.knn(), cb.knn())
    if metric in ('linear_cka', 'linear_cka_unbiased'):
        return _linear_cka(ca, cb, metric == 'linear_cka_unbiased')
    if metric == 'rbf_cka':
        return A.rbf_cka(ca.x, cb.x, rbf_sigma, chunk_size=chunk_size)
    if metric == 'svcca':
        return A.svcca_from_bases(ca.svcca_basis(), cb.svcca_basis())
    return A.procrustes_distance(ca.x, cb.x)


def compare_layers(feats_a,
                   feats_b,
                   metrics=DEFAULT_METRICS,
                   pairs='all',
                   k=10,
                   normalize=True,
                   rbf_sigma=1.0,
                   svcca_keep=10,
                   chunk_size=2048,
                   progress=None):
    """Alignment metrics for pairs of layers.

    Args:
        feats_a (dict[str, Tensor]): Layer name -> (N, D) representations.
        feats_b (dict[str, Tensor]): The other side, same N samples in the
            same order (may be ``feats_a`` itself).
        metrics (Sequence[str]): Names from :data:`ALIGNMENT_METRICS`.
            Defaults to ``('mutual_knn', 'linear_cka', 'svcca')``.
        pairs (str | list[tuple[str, str]]): ``'all'`` (every layer of a
            with every layer of b), ``'matched'`` (i-th with i-th) or
            explicit pairs. Defaults to ``'all'``.
        k (int): Neighbours for mutual k-NN / CKNNA. Defaults to 10.
        normalize (bool): L2-normalise each sample's vector first (the
            platonic-representation and thesis code do). Defaults to True.
        rbf_sigma (float): RBF kernel width. Defaults to 1.0.
        svcca_keep (int | float): SVCCA components (count or variance
            share). Defaults to 10.
        chunk_size (int): Rows per block of N x N work. Defaults to 2048.
        progress (callable, optional): Called once per finished pair.

    Returns:
        list[dict]: One record per pair: ``layer_a``, ``layer_b`` and a
        value per metric.
    """
    _check_metrics(metrics)
    if not feats_a or not feats_b:
        raise ValueError('compare_layers: no layers to compare')
    n = {v.shape[0] for v in [*feats_a.values(), *feats_b.values()]}
    if len(n) != 1:
        raise ValueError(f'compare_layers: layers hold different sample '
                         f'counts {sorted(n)}')
    caches = {}

    def cache(side, name):
        feats = feats_a if side == 'a' else feats_b
        # a layer present on both sides with the same tensor is one cache
        key = (id(feats[name]), name)
        if key not in caches:
            caches[key] = _LayerCache(feats[name], normalize, k, chunk_size,
                                      svcca_keep)
        return caches[key]

    records = []
    for la, lb in _pairs(list(feats_a), list(feats_b), pairs):
        rec = dict(layer_a=la, layer_b=lb)
        for m in metrics:
            rec[m] = _score(m, cache('a', la), cache('b', lb), rbf_sigma,
                            chunk_size)
        records.append(rec)
        if progress is not None:
            progress()
    return records


def select_layers(names, pattern):
    """Names matching a glob pattern (or any of a list of them), in the
    order of ``names``."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    picked = [
        n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)
    ]
    if not picked:
        raise ValueError(f'no layer matches {patterns}; the layers are '
                         f'{list(names)}')
    return picked


@METRICS.register_module()
class RepresentationAlignment(BaseMetric):
    """Alignment of per-layer representations collected during evaluation.

    For models that store a ``{layer name: (D,) tensor}`` dict in each data
    sample (under ``feat_key``), e.g. a two-stream model's per-layer text and
    vision vectors. For models that do not, use
    :class:`mmext.engine.hooks.AlignmentHook`, which records layer outputs
    with forward hooks.

    Args:
        layers_a (str | list[str]): Glob pattern(s) of the first side's
            layer names, e.g. ``'text.*'``.
        layers_b (str | list[str]): Pattern(s) of the other side.
        metrics (Sequence[str]): See :data:`ALIGNMENT_METRICS`.
            Defaults to ``('mutual_knn', 'linear_cka', 'svcca')``.
        pairs (str): ``'matched'`` or ``'all'``. Defaults to ``'matched'``.
        feat_key (str): Data-sample key of the dict. Defaults to
            ``'layer_features'``.
        **kwargs: ``k``, ``normalize``, ``rbf_sigma``, ``svcca_keep`` of
            :func:`compare_layers`; ``collect_device``, ``prefix``.

    Example:
        >>> val_evaluator = dict(type='RepresentationAlignment',
        ...                      layers_a='text.*', layers_b='vision.*')
    """

    default_prefix = 'alignment'

    def __init__(self,
                 layers_a,
                 layers_b,
                 metrics=DEFAULT_METRICS,
                 pairs='matched',
                 feat_key='layer_features',
                 collect_device='cpu',
                 prefix=None,
                 **kwargs):
        super().__init__(collect_device=collect_device, prefix=prefix)
        _check_metrics(metrics)
        self.layers_a, self.layers_b = layers_a, layers_b
        self.metrics = tuple(metrics)
        self.pairs = pairs
        self.feat_key = feat_key
        self.compare_kwargs = kwargs

    def process(self, data_batch, data_samples):
        for sample in data_samples:
            feats = sample.get(self.feat_key)
            if feats is None:
                raise KeyError(
                    f'RepresentationAlignment: data sample has no '
                    f"'{self.feat_key}' (layer name -> vector); the model "
                    'does not emit per-layer features, use AlignmentHook')
            self.results.append({
                n: v.detach().float().cpu().flatten()
                for n, v in feats.items()
            })

    def metric_keys(self):
        """Keys of ``compute_metrics`` (no prefix; ``*``: each layer pair),
        for ``tools/hpo.py``."""
        return [f'{m}/{k}' for m in self.metrics for k in ('mean', '*')]

    def compute_metrics(self, results):
        names = list(results[0])
        stacked = {n: torch.stack([r[n] for r in results]) for n in names}
        fa = {n: stacked[n] for n in select_layers(names, self.layers_a)}
        fb = {n: stacked[n] for n in select_layers(names, self.layers_b)}
        out = {}
        for rec in compare_layers(fa, fb, self.metrics, self.pairs,
                                  **self.compare_kwargs):
            for m in self.metrics:
                out[f'{m}/{rec["layer_a"]}~{rec["layer_b"]}'] = rec[m]
        for m in self.metrics:  # one headline number per metric
            vals = [v for key, v in out.items() if key.startswith(m + '/')]
            out[f'{m}/mean'] = sum(vals) / len(vals)
        return out
