# Copyright (c) mmext contributors. All rights reserved.
"""Time of each alignment metric for one pair of layers, and the dense
reference formulation it replaces.

1. N x D (default 10,000 x 768, float32, rows L2-normalised as the tools
   do): the per-layer k-NN lists (computed once per layer and shared by
   every pair) and each metric for one pair.
2. At a smaller N (default 2,000): the dense formulas (N x N kernels and
   masks, as minyoungg/platonic-rep computes them) vs ours, time and the
   largest difference of the values.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/alignment_metrics.py [--n 10000]
"""
import argparse
import time

import torch
import torch.nn.functional as F

from mmext.evaluation.functional import alignment as A


def timed(fn, reps=1):
    best = float('inf')
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def correlated_pair(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g)
    mix = torch.randn(d, d, generator=g) / d**0.5
    b = a @ mix + 0.5 * torch.randn(n, d, generator=g)
    return F.normalize(a, dim=1), F.normalize(b, dim=1)


# dense formulations (N x N), the comparison baseline
def dense_hsic(k, l_, unbiased):
    n = k.shape[0]
    if not unbiased:
        h = torch.eye(n, dtype=k.dtype) - 1 / n
        return torch.trace(k @ h @ l_ @ h)
    k, l_ = k.clone().fill_diagonal_(0), l_.clone().fill_diagonal_(0)
    return ((k * l_.T).sum() + k.sum() * l_.sum() / ((n - 1) * (n - 2)) - 2 *
            (k @ l_).sum() / (n - 2)) / (
                n * (n - 3))


def dense_cka(a, b, rbf=False, unbiased=False):
    a, b = a.double(), b.double()
    if rbf:
        k, l_ = (torch.exp(-torch.cdist(x, x)**2 / 2) for x in (a, b))
    else:
        k, l_ = a @ a.T, b @ b.T
    return (dense_hsic(k, l_, unbiased) / torch.sqrt(
        dense_hsic(k, k, unbiased) * dense_hsic(l_, l_, unbiased))).item()


def dense_mutual_knn(a, b, k):
    n = a.shape[0]
    masks = []
    for x in (a, b):
        idx = (x @ x.T).fill_diagonal_(-1e8).argsort(1, descending=True)[:, :k]
        masks.append(torch.zeros(n, n).scatter_(1, idx, 1.0))
    return ((masks[0] * masks[1]).sum(1) / k).mean().item()


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n', type=int, default=10000)
    p.add_argument('--d', type=int, default=768)
    p.add_argument('--k', type=int, default=10)
    p.add_argument('--dense-n', type=int, default=2000)
    p.add_argument('--chunk', type=int, default=2048)
    args = p.parse_args()
    print(f'torch {torch.__version__}, {torch.get_num_threads()} thread(s)')

    a, b = correlated_pair(args.n, args.d)
    print(f'\n1. one layer pair, N={args.n}, D={args.d}, k={args.k}')
    (ka, t_knn), (kb, _) = (
        timed(lambda x=x: A.knn(x, args.k, args.chunk)) for x in (a, b))
    rows = [('knn lists (per layer, shared)', t_knn)]
    for name, fn in [
        ('mutual_knn (from lists)',
         lambda: A.mutual_knn_from_knn(ka[0], kb[0])),
        ('cknna (from lists)', lambda: A.cknna_from_knn(ka, kb)),
        ('linear_cka', lambda: A.linear_cka(a, b)),
        ('linear_cka unbiased', lambda: A.linear_cka(a, b, True)),
        ('svcca (10 components)', lambda: A.svcca(a, b, 10)),
        ('svcca (99 % variance)', lambda: A.svcca(a, b, 0.99)),
        ('procrustes', lambda: A.procrustes_distance(a, b)),
        ('rbf_cka (blocked)', lambda: A.rbf_cka(a, b, chunk_size=args.chunk)),
    ]:
        value, sec = timed(fn)
        rows.append((f'{name} = {value:.4f}', sec))
    for name, sec in rows:
        print(f'  {name:<40s} {sec:8.2f} s')

    n = args.dense_n
    a, b = a[:n], b[:n]
    print(f'\n2. dense N x N formulation vs ours, N={n}')
    for name, dense, ours in [
        ('linear_cka', lambda: dense_cka(a, b), lambda: A.linear_cka(a, b)),
        ('linear_cka unbiased', lambda: dense_cka(a, b, unbiased=True),
         lambda: A.linear_cka(a, b, True)),
        ('rbf_cka', lambda: dense_cka(a, b, rbf=True),
         lambda: A.rbf_cka(a, b, chunk_size=512)),
        ('mutual_knn', lambda: dense_mutual_knn(a, b, args.k),
         lambda: A.mutual_knn(a, b, args.k, 512)),
    ]:
        (vd, td), (vo, to) = timed(dense), timed(ours)
        print(f'  {name:<22s} dense {td:7.2f} s  ours {to:7.2f} s  '
              f'x{td / to:6.1f}  |diff| {abs(vd - vo):.1e}')


if __name__ == '__main__':
    main()
