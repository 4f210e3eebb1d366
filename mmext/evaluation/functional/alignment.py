# Copyright (c) mmext contributors. All rights reserved.
"""Representation alignment between two (N, D) feature sets of N samples.

Mutual k-NN and CKNNA follow the platonic-representation paper (Huh et al.,
ICML 2024, minyoungg/platonic-rep ``metrics.py``); CKA follows Kornblith et
al. (ICML 2019) with the biased HSIC (Gretton et al. 2005) or the unbiased
one (Song et al., JMLR 2012); SVCCA follows Raghu et al. (NeurIPS 2017);
the Procrustes distance follows Ding et al. (NeurIPS 2021).

The reference builds dense N x N kernels and masks (8 GB of float64 for
N = 10k). Here nothing N x N is kept:

- linear CKA works in feature space (``||Xc^T Yc||_F^2`` is the biased HSIC
  of the linear kernels; the unbiased HSIC needs only row sums and norms),
- RBF CKA accumulates the HSIC sums over row blocks of the kernels,
- k-NN metrics keep only each row's top-k (indices and inner products);
  CKNNA's HSIC of the masked kernels is a sum over the kept pairs.

Each blocked function takes ``chunk_size`` (rows per block; None = one
block) and gives the same value as the dense formula.
"""
import torch

__all__ = [
    'knn', 'mutual_knn', 'mutual_knn_from_knn', 'cknna', 'cknna_from_knn',
    'linear_cka', 'linear_hsic', 'rbf_cka', 'svcca', 'svcca_basis',
    'svcca_from_bases', 'canonical_correlations', 'procrustes_distance'
]


def _check_pair(a, b, name):
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f'{name}: expected two (N, D) tensors, got shapes '
                         f'{tuple(a.shape)} and {tuple(b.shape)}')
    if a.shape[0] != b.shape[0]:
        raise ValueError(f'{name}: the two representations hold '
                         f'{a.shape[0]} and {b.shape[0]} samples; they must '
                         'describe the same samples in the same order')


def _blocks(n, chunk_size):
    step = n if not chunk_size else int(chunk_size)
    for start in range(0, n, step):
        yield start, min(start + step, n)


def knn(x, k, chunk_size=None, exclude_self=True):
    """The ``k`` nearest neighbours of each row by inner product.

    Args:
        x (Tensor): (N, D) features.
        k (int): Number of neighbours (``< N``).
        chunk_size (int, optional): Rows per block of the (N, N) inner
            products. Defaults to None (one block).
        exclude_self (bool): Leave row i out of its own neighbours.
            Defaults to True.

    Returns:
        tuple[Tensor, Tensor]: (N, k) neighbour indices and their inner
        products, most similar first.
    """
    n = x.shape[0]
    if not 0 < k < n:
        raise ValueError(f'knn: k={k} must be in [1, N-1] for N={n} '
                         'samples; lower k or collect more samples')
    idx, val = [], []
    for s, e in _blocks(n, chunk_size):
        sim = x[s:e] @ x.T
        if exclude_self:
            rows = torch.arange(e - s, device=x.device)
            sim[rows, rows + s] = float('-inf')
        v, i = sim.topk(k, dim=1)
        idx.append(i)
        val.append(v)
    return torch.cat(idx), torch.cat(val)


def _overlap_counts(idx_a, idx_b, chunk_size=4096):
    """|NN_a(i) ∩ NN_b(i)| per row (neighbour lists hold no repeats)."""
    out = []
    for s, e in _blocks(idx_a.shape[0], chunk_size):
        eq = idx_a[s:e, :, None] == idx_b[s:e, None, :]  # n k k
        out.append(eq.sum((1, 2)))
    return torch.cat(out)


def mutual_knn_from_knn(idx_a, idx_b):
    """Mutual k-NN alignment from precomputed (N, k) neighbour indices."""
    k = idx_a.shape[1]
    return (_overlap_counts(idx_a, idx_b).double() / k).mean().item()


def mutual_knn(a, b, k=10, chunk_size=None):
    """Mutual k-NN alignment: mean over samples of ``|NN_a ∩ NN_b| / k``.

    Neighbours by inner product, a sample never being its own neighbour
    (L2-normalise the rows first for cosine neighbours, as the
    platonic-representation code does). 1 for identical representations,
    about ``k / (N - 1)`` for independent ones.

    Args:
        a (Tensor): (N, Da) features.
        b (Tensor): (N, Db) features of the same samples.
        k (int): Neighbours per sample. Defaults to 10.
        chunk_size (int, optional): Rows per block. Defaults to None.

    Returns:
        float: The alignment in [0, 1].

    Example:
        >>> x = torch.randn(100, 8)
        >>> mutual_knn(x, 2 * x, k=5)
        1.0
    """
    _check_pair(a, b, 'mutual_knn')
    return mutual_knn_from_knn(
        knn(a, k, chunk_size)[0],
        knn(b, k, chunk_size)[0])


def _pairs_hsic(n, rows, cols, vk, vl, unbiased):
    """HSIC of the sparse M_K, M_L holding ``vk``/``vl`` at the pairs
    (rows[p], cols[p]). K and L are symmetric, so M_L[j, i] = L_ij when
    (j, i) is a pair too."""
    vk, vl = vk.double(), vl.double()
    present = torch.isin(cols * n + rows, rows * n + cols).double()
    tr_kl = (vk * vl * present).sum()  # tr(M_K M_L) = Σ M_K[i,j] M_L[j,i]

    def sums(index, v):
        return torch.zeros(
            n, dtype=torch.float64, device=v.device).index_add_(0, index, v)

    row_k, row_l = sums(rows, vk), sums(rows, vl)
    col_k, col_l = sums(cols, vk), sums(cols, vl)
    sum_k, sum_l = row_k.sum(), row_l.sum()
    if unbiased:  # the diagonal is never a pair (self excluded)
        # Σ(M_K M_L) = 1^T M_K M_L 1 = (M_K^T 1) · (M_L 1)
        hsic = (
            tr_kl + sum_k * sum_l / ((n - 1) * (n - 2)) - 2 *
            (col_k * row_l).sum() / (n - 2))
        return hsic / (n * (n - 3))
    # tr(A H B H) = tr(AB) - (A1·B^T1 + A^T1·B1) / n + (1^TA1)(1^TB1) / n²
    return (tr_kl - ((row_k * col_l).sum() + (col_k * row_l).sum()) / n +
            sum_k * sum_l / n**2)


def cknna_from_knn(knn_a, knn_b, unbiased=True):
    """CKNNA from precomputed ``(indices, inner products)`` of :func:`knn`
    (with the sample itself excluded when ``unbiased``)."""
    (ia, va), (ib, vb) = knn_a, knn_b
    n, k = ia.shape
    if k < 2:
        raise ValueError('cknna: k must be >= 2')
    rows = torch.arange(n, device=ia.device).repeat_interleave(k)

    def sim(i1, v1, i2, v2):
        # pairs (i, j) in both neighbour lists, with K_ij and L_ij
        eq = i1[:, :, None] == i2[:, None, :]  # n k k
        hit = eq.any(2).flatten()
        pos = eq.float().argmax(2).flatten()
        r = rows[hit]
        c = i1.flatten()[hit]
        vk = v1.flatten()[hit]
        vl = v2.flatten()[(r * k + pos[hit])]
        return _pairs_hsic(n, r, c, vk, vl, unbiased)

    s_ab = sim(ia, va, ib, vb)
    s_aa = sim(ia, va, ia, va)
    s_bb = sim(ib, vb, ib, vb)
    return (s_ab / torch.sqrt(s_aa * s_bb)).item()


def cknna(a, b, k=10, unbiased=True, chunk_size=None):
    """CKNNA: CKA restricted to the mutual k-nearest-neighbour pairs.

    The HSIC of ``mask ∘ K`` and ``mask ∘ L`` where ``mask`` keeps the pairs
    (i, j) with j among i's k nearest neighbours (inner product) in both
    representations, normalised as CKA. With ``unbiased`` (the reference's
    default) a sample is not its own neighbour and the unbiased HSIC is
    used; otherwise the sample may be and the biased HSIC is used.

    Args:
        a (Tensor): (N, Da) features.
        b (Tensor): (N, Db) features of the same samples.
        k (int): Neighbours per sample (>= 2). Defaults to 10.
        unbiased (bool): Defaults to True.
        chunk_size (int, optional): Rows per block. Defaults to None.

    Returns:
        float: The CKNNA score (1 for identical representations).
    """
    _check_pair(a, b, 'cknna')
    return cknna_from_knn(
        knn(a, k, chunk_size, exclude_self=unbiased),
        knn(b, k, chunk_size, exclude_self=unbiased), unbiased)


def _hsic_from_sums(n, tr_kl, sum_k, sum_l, row_k, row_l, unbiased):
    if unbiased:  # K, L with zeroed diagonals
        return (tr_kl + sum_k * sum_l / ((n - 1) * (n - 2)) - 2 *
                (row_k * row_l).sum() / (n - 2)) / (
                    n * (n - 3))
    return tr_kl - 2 * (row_k * row_l).sum() / n + sum_k * sum_l / n**2


def _cka(hsic_ab, hsic_aa, hsic_bb):
    return (hsic_ab / torch.sqrt(hsic_aa * hsic_bb)).item()


def _linear_terms(x, y):
    """Σ_ij K_ij L_ij, ΣK, ΣL, K1, L1 and diagonals for K = XX^T, L = YY^T
    without forming them."""
    cross = x.T @ y
    tr = (cross.double()**2).sum()
    sx, sy = x.double().sum(0), y.double().sum(0)
    return tr, sx @ sx, sy @ sy, x.double() @ sx, y.double() @ sy


def linear_hsic(x, y, unbiased=False):
    """HSIC of the linear kernels of x and y (centre them first for the
    biased estimator), in feature space."""
    n = x.shape[0]
    tr, sum_k, sum_l, row_k, row_l = _linear_terms(x, y)
    if not unbiased:
        return _hsic_from_sums(n, tr, sum_k, sum_l, row_k, row_l, False)
    dk = (x.double()**2).sum(1)
    dl = (y.double()**2).sum(1)
    return _hsic_from_sums(n, tr - (dk * dl).sum(), sum_k - dk.sum(),
                           sum_l - dl.sum(), row_k - dk, row_l - dl, True)


def linear_cka(a, b, unbiased=False):
    """Linear CKA, computed in feature space (no N x N kernel).

    Args:
        a (Tensor): (N, Da) features.
        b (Tensor): (N, Db) features of the same samples.
        unbiased (bool): Use the unbiased HSIC estimator (needs N > 3).
            Defaults to False (the biased HSIC of the original CKA).

    Returns:
        float: CKA in [0, 1]; invariant to orthogonal transforms and
        isotropic scaling of either input.

    Example:
        >>> x = torch.randn(50, 8)
        >>> q = torch.linalg.qr(torch.randn(8, 8))[0]
        >>> round(linear_cka(x, 3 * x @ q), 6)
        1.0
    """
    _check_pair(a, b, 'linear_cka')
    if not unbiased:  # centring does not change the biased HSIC
        a = a - a.double().mean(0).to(a.dtype)
        b = b - b.double().mean(0).to(b.dtype)
    return _cka(
        linear_hsic(a, b, unbiased), linear_hsic(a, a, unbiased),
        linear_hsic(b, b, unbiased))


def _rbf_block(x, rows, sigma):
    sq = (x[rows]**2).sum(1, keepdim=True) + (x**2).sum(1) - 2 * x[rows] @ x.T
    # the input's precision; the sums below accumulate in float64
    return torch.exp(-sq.clamp_min(0) / (2 * sigma**2))


def rbf_cka(a, b, sigma=1.0, unbiased=False, chunk_size=None):
    """CKA with Gaussian kernels ``exp(-||x_i - x_j||² / (2 sigma²))``.

    The HSIC sums are accumulated over blocks of kernel rows, so memory is
    ``chunk_size x N``. ``sigma`` is absolute (1 on L2-normalised rows, as
    the platonic-representation and thesis code use).

    Args:
        a (Tensor): (N, Da) features.
        b (Tensor): (N, Db) features of the same samples.
        sigma (float): Kernel width. Defaults to 1.0.
        unbiased (bool): Unbiased HSIC. Defaults to False.
        chunk_size (int, optional): Kernel rows per block. Defaults to None.

    Returns:
        float: RBF CKA.
    """
    _check_pair(a, b, 'rbf_cka')
    n = a.shape[0]
    terms = torch.zeros(3, dtype=torch.float64)  # Σ K∘L, Σ K∘K, Σ L∘L
    row_k = torch.zeros(n, dtype=torch.float64)
    row_l = torch.zeros(n, dtype=torch.float64)
    for s, e in _blocks(n, chunk_size):
        rows = torch.arange(s, e)
        k = _rbf_block(a, rows, sigma)
        l_ = _rbf_block(b, rows, sigma)
        if unbiased:
            k[rows - s, rows] = 0
            l_[rows - s, rows] = 0
        f64 = torch.float64
        terms += torch.stack([(k * l_).sum(dtype=f64), (k * k).sum(dtype=f64),
                              (l_ * l_).sum(dtype=f64)])
        row_k[s:e] = k.sum(1, dtype=f64)
        row_l[s:e] = l_.sum(1, dtype=f64)
    sk, sl = row_k.sum(), row_l.sum()
    return _cka(
        _hsic_from_sums(n, terms[0], sk, sl, row_k, row_l, unbiased),
        _hsic_from_sums(n, terms[1], sk, sk, row_k, row_k, unbiased),
        _hsic_from_sums(n, terms[2], sl, sl, row_l, row_l, unbiased))


def _top_components(x, keep, eps):
    """Standardised ``x`` projected on its leading principal directions.

    ``keep`` >= 1 (int) keeps that many, a float in (0, 1] the fewest that
    explain that share of the variance.
    """
    x = x.double()
    x = (x - x.mean(0)) / (x.std(0) + eps)
    # eigenvectors of the D x D scatter: the right singular vectors of x
    evals, evecs = torch.linalg.eigh(x.T @ x)
    evals, evecs = evals.flip(0).clamp_min(0), evecs.flip(1)
    if isinstance(keep, float) and keep <= 1:
        share = evals.cumsum(0) / evals.sum()
        keep = int((share < keep - 1e-12).sum().item()) + 1
    keep = min(int(keep), x.shape[1])
    return x @ evecs[:, :keep]


def svcca_basis(x, keep=10, eps=1e-8):
    """Orthonormal (N, p) basis of ``x``'s standardised top principal
    components (the per-layer half of :func:`svcca`)."""
    if isinstance(keep, float) and not 0 < keep <= 1:
        raise ValueError(f'svcca: keep={keep} must be a count >= 1 or a '
                         'variance share in (0, 1]')
    c = _top_components(x, keep, eps)
    return torch.linalg.qr(c - c.mean(0))[0]


def canonical_correlations(x, y):
    """Canonical correlations of (N, p) and (N, q) data, largest first
    (singular values of ``Qx^T Qy`` for orthonormal bases of the centred
    columns)."""
    qx = torch.linalg.qr(x - x.mean(0))[0]
    qy = torch.linalg.qr(y - y.mean(0))[0]
    return torch.linalg.svdvals(qx.T @ qy).clamp(0, 1)


def svcca_from_bases(qa, qb):
    """Mean canonical correlation from two :func:`svcca_basis` results."""
    return torch.linalg.svdvals(qa.T @ qb).clamp(0, 1).mean().item()


def svcca(a, b, keep=10, eps=1e-8):
    """SVCCA: mean canonical correlation of the top principal components.

    Each side is standardised (zero mean, unit standard deviation per
    dimension), reduced to its top ``keep`` principal components (a count,
    or a variance share such as 0.99), and the mean of the
    ``min(p, q)`` canonical correlations between the two is returned.
    The thesis and platonic-rep code use a randomised ``svd_lowrank`` and
    scikit-learn's iterative CCA; both are exact here.

    Args:
        a (Tensor): (N, Da) features.
        b (Tensor): (N, Db) features of the same samples.
        keep (int | float): Components kept per side. Defaults to 10.
        eps (float): Added to the standard deviation. Defaults to 1e-8.

    Returns:
        float: Mean canonical correlation in [0, 1].
    """
    _check_pair(a, b, 'svcca')
    return svcca_from_bases(
        svcca_basis(a, keep, eps), svcca_basis(b, keep, eps))


def procrustes_distance(a, b, center=True, scale=True):
    """Orthogonal Procrustes distance ``min_Q ||A Q - B||_F``.

    Equals ``sqrt(||A||² + ||B||² - 2 ||A^T B||_*)`` (nuclear norm); with
    ``center`` and ``scale`` the columns are centred and each side scaled to
    unit Frobenius norm (Ding et al. 2021), so the distance lies in
    [0, sqrt(2)]. Different widths need no padding.

    Args:
        a (Tensor): (N, Da) features.
        b (Tensor): (N, Db) features of the same samples.
        center (bool): Centre the columns. Defaults to True.
        scale (bool): Unit Frobenius norm. Defaults to True.

    Returns:
        float: The distance (0 for identical inputs).
    """
    _check_pair(a, b, 'procrustes_distance')
    a, b = a.double(), b.double()
    if center:
        a, b = a - a.mean(0), b - b.mean(0)
    if scale:
        a, b = a / a.norm(), b / b.norm()
    nuc = torch.linalg.matrix_norm(a.T @ b, ord='nuc')
    d2 = a.norm()**2 + b.norm()**2 - 2 * nuc
    return d2.clamp_min(0).sqrt().item()
