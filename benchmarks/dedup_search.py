# Copyright (c) mmext contributors. All rights reserved.
"""Speed and memory of ``find_cross_set_duplicates`` (random 64-bit hashes).

1. 10,000 x 10,000 (a Flowers-102 x Flowers-17 sized check), flip-aware:
   * ours (tiled, reused buffers);
   * a plain numpy broadcast, ``np.bitwise_count(q[:, None] ^ r[None])`` in
     1,000-row chunks + ``np.nonzero`` (same pairs asserted);
   * the pairwise ``ImageHash.__sub__`` loop, timed on a 300 x 300
     subsample and extrapolated.
2. 1,000,000 x 10,000, flip-aware: ours, with peak traced memory; the plain
   broadcast on a 20,000-row subsample, extrapolated, with its peak.

Usage:
    python benchmarks/dedup_search.py [--big-rows 1000000]
"""
import argparse
import os.path as osp
import resource
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from mmext.dedup import HashResult, find_cross_set_duplicates  # noqa: E402

THRESHOLD = 10


def random_hashes(n, seed, prefix):
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64, (n, 1), dtype=np.uint64)
    f = rng.integers(0, 2**64, (n, 1), dtype=np.uint64)
    return HashResult([f'{prefix}{i}' for i in range(n)], h, f)


def plain_broadcast(q, r, threshold, rows=1000):
    """The obvious numpy version: one temporary matrix per chunk."""
    found = set()
    for hashes in (q.hashes, q.flipped):
        a, b = hashes[:, 0], r.hashes[:, 0]
        for r0 in range(0, len(a), rows):
            d = np.bitwise_count(a[r0:r0 + rows, None] ^ b[None, :])
            ii, jj = np.nonzero(d <= threshold)
            found.update(zip((ii + r0).tolist(), jj.tolist()))
    return found


def imagehash_loop_seconds_per_pair(q, r, n=300):
    import imagehash

    def to_ih(words):
        bits = np.unpackbits(words.astype('>u8').view(np.uint8))
        return imagehash.ImageHash(bits.astype(bool).reshape(8, 8))

    qa = [to_ih(q.hashes[i]) for i in range(n)]
    qf = [to_ih(q.flipped[i]) for i in range(n)]
    rb = [to_ih(r.hashes[j]) for j in range(n)]
    t0 = time.perf_counter()
    hits = 0
    for a, f in zip(qa, qf):
        for b in rb:
            hits += min(a - b, f - b) <= THRESHOLD
    return (time.perf_counter() - t0) / (n * n)


def timed(fn, *args, **kwargs):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    sec = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, sec, peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--big-rows', type=int, default=1_000_000)
    args = parser.parse_args()

    q, r = random_hashes(10_000, 0, 'q'), random_hashes(10_000, 1, 'r')
    for k in range(20):  # planted near duplicates
        r.hashes[k * 400] = q.hashes[k * 300] ^ np.uint64((1 << k % 9) - 1)
    ours, t_ours, m_ours = timed(find_cross_set_duplicates, q, r, THRESHOLD)
    plain, t_plain, m_plain = timed(plain_broadcast, q, r, THRESHOLD)
    assert {(p.query_index, p.ref_index) for p in ours} == plain
    per_pair = imagehash_loop_seconds_per_pair(q, r)
    t_loop = per_pair * len(q) * len(r)
    print(f'10,000 x 10,000 phash-64, flip-aware, threshold {THRESHOLD} '
          f'({len(ours)} pairs, identical sets):')
    print(f'  ours                {t_ours:8.2f} s  peak {m_ours:7.1f} MiB')
    print(f'  plain numpy         {t_plain:8.2f} s  peak {m_plain:7.1f} MiB'
          f'  -> ours {t_plain / t_ours:.1f}x faster')
    print(f'  ImageHash.__sub__   {t_loop:8.0f} s  (extrapolated from '
          f'300x300, {per_pair * 1e6:.1f} us/pair) -> ours '
          f'{t_loop / t_ours:.0f}x faster')

    big = random_hashes(args.big_rows, 2, 'b')
    big.hashes[123_457 % args.big_rows] = r.hashes[77]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ours, t_big, m_big = timed(find_cross_set_duplicates, big, r, THRESHOLD)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert any(p.ref_index == 77 and p.distance == 0 for p in ours)
    sub = min(20_000, args.big_rows)
    sub_set = HashResult(big.paths[:sub], big.hashes[:sub],
                         big.flipped[:sub])
    _, t_sub, m_sub = timed(plain_broadcast, sub_set, r, THRESHOLD)
    t_plain_big = t_sub * args.big_rows / sub
    print(f'{args.big_rows:,} x 10,000, flip-aware ({len(ours)} pairs):')
    print(f'  ours                {t_big:8.1f} s  peak {m_big:7.1f} MiB '
          f'traced during the search (hash arrays, made before: '
          f'{2 * big.hashes.nbytes / 2**20:.0f} MiB); '
          f'{2 * args.big_rows * 1e4 / t_big / 1e9:.2f} G comparisons/s')
    print(f'  plain numpy         {t_plain_big:8.1f} s  peak {m_sub:7.1f} MiB'
          f'  (extrapolated from {sub:,} rows) -> ours '
          f'{t_plain_big / t_big:.1f}x faster')
    print(f'  process max RSS {rss0:.0f} MiB before our big search, '
          f'{rss1:.0f} MiB after (torch etc. imported by mmext included)')


if __name__ == '__main__':
    main()
