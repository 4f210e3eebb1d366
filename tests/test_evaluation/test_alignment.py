# Copyright (c) mmext contributors. All rights reserved.
"""Alignment metrics: reference values, invariances, chunked = direct."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmext.evaluation.functional import alignment as A
from mmext.evaluation.metrics.alignment import (RepresentationAlignment,
                                                compare_layers)
from tests.conftest import ROOT

GOLDEN = json.loads((ROOT / 'tests/data/alignment_golden.json').read_text())


def _golden_inputs():
    # as described in the golden file's _about
    rng = np.random.default_rng(0)
    a = rng.standard_normal((120, 16))
    b = a[:, :12] @ rng.standard_normal((12, 20)) + \
        0.7 * rng.standard_normal((120, 20))
    return torch.from_numpy(a), torch.from_numpy(b)


def _orthogonal(d, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(
        torch.randn(d, d, generator=g, dtype=torch.float64))[0]


@pytest.mark.parametrize('variant', ['raw', 'l2'])
def test_platonic_rep_reference_values(variant):
    a, b = _golden_inputs()
    if variant == 'l2':
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    ref = GOLDEN[variant]
    got = dict(
        linear_cka=A.linear_cka(a, b),
        linear_cka_unbiased=A.linear_cka(a, b, unbiased=True),
        rbf_cka=A.rbf_cka(a, b, 1.0),
        rbf_cka_unbiased=A.rbf_cka(a, b, 1.0, unbiased=True),
        mutual_knn=A.mutual_knn(a, b, 10),
        cknna=A.cknna(a, b, 10),
        cknna_biased=A.cknna(a, b, 10, unbiased=False))
    for name, value in got.items():
        assert value == pytest.approx(ref[name], abs=1e-9), name


def test_cka_identity_and_invariances():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 24, generator=g, dtype=torch.float64)
    y = torch.randn(200, 24, generator=g, dtype=torch.float64)
    q = _orthogonal(24, 2)
    for unbiased in (False, True):
        assert A.linear_cka(x, x, unbiased) == pytest.approx(1, abs=1e-10)
        base = A.linear_cka(x, y, unbiased)
        assert -0.1 < base < 0.5  # independent (unbiased: about 0)
        assert A.linear_cka(x @ q * 7.5, y, unbiased) == pytest.approx(
            base, abs=1e-10)
        assert A.rbf_cka(x, x, 4.0, unbiased) == pytest.approx(1, abs=1e-10)
    # RBF CKA is orthogonal-invariant (distances kept), not scale-invariant
    assert A.rbf_cka(x @ q, y, 4.0) == pytest.approx(
        A.rbf_cka(x, y, 4.0), abs=1e-10)
    # biased linear CKA ignores a shift; the feature-space form matches the
    # kernel-space one
    assert A.linear_cka(x + 3, y) == pytest.approx(
        A.linear_cka(x, y), abs=1e-10)


def test_cka_float32_large_identity():
    x = torch.randn(3000, 64)
    assert A.linear_cka(x, x) == pytest.approx(1, abs=1e-5)
    assert A.linear_cka(x, x @ _orthogonal(64, 3).float()) == \
        pytest.approx(1, abs=1e-5)


def test_mutual_knn_identity_and_chance():
    g = torch.Generator().manual_seed(4)
    n, k = 1000, 10
    x = torch.randn(n, 32, generator=g)
    assert A.mutual_knn(x, x, k) == 1.0
    assert A.mutual_knn(x, 3 * x @ _orthogonal(32, 5).float(), k) == 1.0
    y = torch.randn(n, 32, generator=g)
    chance = k / (n - 1)
    assert A.mutual_knn(x, y, k) == pytest.approx(chance, abs=0.004)
    assert A.cknna(x, x, k) == pytest.approx(1, abs=1e-9)


def test_knn_excludes_self_and_refuses_bad_k():
    x = torch.randn(20, 4)
    idx, _ = A.knn(x, 5)
    assert not (idx == torch.arange(20)[:, None]).any()
    with pytest.raises(ValueError, match='k=20'):
        A.knn(x, 20)
    with pytest.raises(ValueError, match='same samples'):
        A.linear_cka(x, x[:10])


@pytest.mark.parametrize('chunk', [1, 7, 64])
def test_chunked_equals_direct(chunk):
    a, b = _golden_inputs()
    assert A.knn(a, 9, chunk)[0].equal(A.knn(a, 9)[0])
    assert A.mutual_knn(a, b, 9, chunk) == A.mutual_knn(a, b, 9)
    assert A.cknna(
        a, b, 9, chunk_size=chunk) == pytest.approx(
            A.cknna(a, b, 9), abs=1e-12)
    for unbiased in (False, True):
        assert A.rbf_cka(a, b, 5.0, unbiased, chunk) == pytest.approx(
            A.rbf_cka(a, b, 5.0, unbiased), abs=1e-12)


def test_svcca_matches_scikit_learn_cca():
    from sklearn.cross_decomposition import CCA
    a, b = _golden_inputs()
    keep = 6
    xa = A._top_components(a, keep, 1e-8).numpy()
    xb = A._top_components(b, keep, 1e-8).numpy()
    cca = CCA(n_components=keep, max_iter=5000, tol=1e-10).fit(xa, xb)
    u, v = cca.transform(xa, xb)
    ref = np.mean([np.corrcoef(u[:, i], v[:, i])[0, 1] for i in range(keep)])
    assert A.svcca(a, b, keep=keep) == pytest.approx(ref, abs=1e-6)
    assert A.svcca(a, a, keep=keep) == pytest.approx(1, abs=1e-9)


def test_svcca_variance_share_keeps_fewest_components():
    g = torch.Generator().manual_seed(6)
    # 3 strong directions + weak noise: 95 % of the variance needs 3 PCs
    basis = torch.randn(3, 30, generator=g, dtype=torch.float64)
    x = torch.randn(400, 3, generator=g, dtype=torch.float64) @ basis * 10
    x = x + 0.01 * torch.randn(400, 30, generator=g, dtype=torch.float64)
    assert A._top_components(x, 0.95, 1e-8).shape[1] == 3
    assert A._top_components(x, 5, 1e-8).shape[1] == 5
    with pytest.raises(ValueError, match='variance share'):
        A.svcca(x, x, keep=1.5)


def test_procrustes_distance_matches_scipy():
    from scipy.linalg import orthogonal_procrustes
    a, b = _golden_inputs()
    b = b[:, :16]
    ac, bc = a - a.mean(0), b - b.mean(0)
    ac, bc = (ac / ac.norm()).numpy(), (bc / bc.norm()).numpy()
    r, _ = orthogonal_procrustes(ac, bc)
    ref = np.linalg.norm(ac @ r - bc)
    assert A.procrustes_distance(a, b) == pytest.approx(ref, abs=1e-10)
    q = _orthogonal(16, 7)
    assert A.procrustes_distance(a, 2 * a @ q) == pytest.approx(0, abs=1e-6)


def test_compare_layers_pairs_and_cache():
    g = torch.Generator().manual_seed(8)
    x = torch.randn(100, 16, generator=g)
    y = torch.randn(100, 16, generator=g)
    feats_a = {'l0': x, 'l1': y}
    feats_b = {'m0': x @ _orthogonal(16, 9).float(), 'm1': y}
    recs = compare_layers(
        feats_a, feats_b, ['mutual_knn', 'linear_cka'], pairs='all', k=5)
    assert [(r['layer_a'], r['layer_b']) for r in recs] == [('l0', 'm0'),
                                                            ('l0', 'm1'),
                                                            ('l1', 'm0'),
                                                            ('l1', 'm1')]
    by = {(r['layer_a'], r['layer_b']): r for r in recs}
    # rows are L2-normalised first: a rotation keeps neighbours and CKA
    assert by['l0', 'm0']['mutual_knn'] == 1.0
    assert by['l1', 'm1']['linear_cka'] == pytest.approx(1, abs=1e-6)
    assert by['l0', 'm1']['linear_cka'] < 0.5
    matched = compare_layers(feats_a, feats_b, ['svcca'], pairs='matched')
    assert [r['layer_b'] for r in matched] == ['m0', 'm1']
    with pytest.raises(ValueError, match='unknown alignment metric'):
        compare_layers(feats_a, feats_b, ['cca'])
    with pytest.raises(ValueError, match='different sample counts'):
        compare_layers(feats_a, {'z': x[:50]})


def test_representation_alignment_metric():
    g = torch.Generator().manual_seed(10)
    t = torch.randn(40, 8, generator=g)
    v = torch.randn(40, 8, generator=g)
    metric = RepresentationAlignment(
        'text.*', 'vision.*', metrics=['linear_cka'], k=5)
    for i in range(0, 40, 10):  # batches of data samples
        metric.process({}, [
            dict(
                layer_features={
                    'text.0': t[j],
                    'text.1': v[j],
                    'vision.0': t[j] * 2,
                    'vision.1': -v[j]
                }) for j in range(i, i + 10)
        ])
    out = metric.evaluate(40)
    assert out['alignment/linear_cka/text.0~vision.0'] == pytest.approx(1)
    assert out['alignment/linear_cka/text.1~vision.1'] == pytest.approx(1)
    assert out['alignment/linear_cka/mean'] == pytest.approx(1)
    empty = RepresentationAlignment('a', 'b')
    with pytest.raises(KeyError, match='AlignmentHook'):
        empty.process({}, [dict(pred_label=1)])


def test_compare_layers_equals_the_pair_functions():
    """The per-layer caches (k-NN lists, centred features, self-HSIC,
    SVCCA bases) give the values of the stand-alone functions."""
    from mmext.evaluation.metrics.alignment import ALIGNMENT_METRICS
    g = torch.Generator().manual_seed(11)
    x = torch.randn(150, 20, generator=g)
    noise = torch.randn(150, 30, generator=g)
    y = x @ torch.randn(20, 30, generator=g) + noise
    z = torch.randn(150, 25, generator=g)
    feats = dict(x=x, y=y, z=z)
    recs = compare_layers(
        dict(x=x, y=y),
        dict(y=y, z=z),
        list(ALIGNMENT_METRICS),
        k=7,
        normalize=False,
        svcca_keep=5)
    fns = dict(
        mutual_knn=lambda a, b: A.mutual_knn(a, b, 7),
        cknna=lambda a, b: A.cknna(a, b, 7),
        linear_cka=A.linear_cka,
        linear_cka_unbiased=lambda a, b: A.linear_cka(a, b, True),
        rbf_cka=lambda a, b: A.rbf_cka(a, b, 1.0),
        svcca=lambda a, b: A.svcca(a, b, 5),
        procrustes=A.procrustes_distance)
    assert len(recs) == 4
    for r in recs:
        for m, fn in fns.items():
            assert r[m] == pytest.approx(
                fn(feats[r['layer_a']], feats[r['layer_b']]), abs=1e-5), m
