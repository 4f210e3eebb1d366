# Copyright (c) mmext contributors. All rights reserved.
"""Speed and memory of ``find_cross_set_duplicates`` (random 64-bit hashes,
threshold 10, flip-aware: each query's hash and mirror hash).

1. 10,000 x 10,000 (a Flowers-102 x Flowers-17 sized check):
   * ours, tiled brute force (reused buffers) and multi-index (``mih``);
   * a plain numpy broadcast, ``np.bitwise_count(q[:, None] ^ r[None])`` in
     1,000-row chunks + ``np.nonzero`` (same pairs asserted);
   * the pairwise ``ImageHash.__sub__`` loop, timed on a 300 x 300
     subsample and extrapolated.
2. 100,000 x 10,000 (10^9 pairs): tiled vs multi-index, identical
   ``DuplicatePair`` lists asserted.
3. 10,000,000 x 100,000 (10^12 pairs, the issue-13 target: < 10 min on
   2 cores): multi-index with 2 threads, peak traced memory; the tiled
   time extrapolated from (2).

``--calibrate`` measures the cost constants of ``mmext.dedup.mih`` (CPU
seconds per bucket visit, candidate check, brute-force pair).

Usage:
    python benchmarks/dedup_search.py [--big-rows 10000000]
        [--big-ref 100000] [--calibrate]
"""
import argparse
import os
import time
import tracemalloc

import numpy as np

from mmext.dedup import HashResult, find_cross_set_duplicates, mih

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


def calibrate():
    """CPU seconds per probe / candidate (two part layouts of very
    different probe:candidate ratios, solved as a 2x2 system) and per
    brute-force pair."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**64, (50_000, 1), dtype=np.uint64)
    b = rng.integers(0, 2**64, (10_000, 1), dtype=np.uint64)
    c0 = time.process_time()
    for _ in find_cross_set_duplicates(
            HashResult(['a'] * len(a), a, None),
            HashResult(['b'] * len(b), b, None),
            algorithm='tiled'):
        pass
    brute = (time.process_time() - c0) / (len(a) * len(b))
    rows, num_q = 1_000_000, 4000
    idx = rng.integers(0, 2**64, rows, dtype=np.uint64)
    q = rng.integers(0, 2**64, num_q, dtype=np.uint64)
    eqs, rhs = [], []
    for parts in ([(0, 16, 2), (16, 16, 2), (32, 16, 2),
                   (48, 16, 1)], [(0, 22, 3), (22, 21, 3), (43, 21, 2)]):
        c0 = time.process_time()
        block = mih._Block(idx, parts)
        build = time.process_time() - c0
        c0 = time.process_time()
        for _ in mih._search_block(block, q, THRESHOLD, 1):
            pass
        per_q = (time.process_time() - c0) / num_q
        probes = sum(mih._ball_size(b, r) for _, b, r in parts)
        cands = sum(rows * mih._ball_size(b, r) / 2**b for _, b, r in parts)
        eqs.append([probes, cands])
        rhs.append(per_q)
        print(f'  parts {[b for _, b, _ in parts]}: {probes} probes + '
              f'{cands:.0f} candidates per query: {per_q * 1e6:.0f} us; '
              f'build {build / len(parts) / rows * 1e9:.0f} ns/row/part')
    probe, cand = np.linalg.solve(np.array(eqs), np.array(rhs))
    print(f'SEC_PER_PROBE ~ {probe * 1e9:.0f} ns, SEC_PER_CANDIDATE ~ '
          f'{cand * 1e9:.0f} ns, SEC_PER_BRUTE_PAIR ~ {brute * 1e9:.2f} ns '
          f'(CPU time, load average {os.getloadavg()[0]:.1f})')


def same_pairs(a, b):
    return [
        (p.query_index, p.ref_index, p.distance, p.variant) for p in a
    ] == [(p.query_index, p.ref_index, p.distance, p.variant) for p in b]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--big-rows', type=int, default=10_000_000)
    parser.add_argument('--big-ref', type=int, default=100_000)
    parser.add_argument('--calibrate', action='store_true')
    args = parser.parse_args()
    if args.calibrate:
        calibrate()
        return
    print(f'load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores')

    q, r = random_hashes(10_000, 0, 'q'), random_hashes(10_000, 1, 'r')
    for k in range(20):  # planted near duplicates
        r.hashes[k * 400] = q.hashes[k * 300] ^ np.uint64((1 << k % 9) - 1)
    ours, t_ours, m_ours = timed(
        find_cross_set_duplicates, q, r, THRESHOLD, algorithm='tiled')
    ours_mih, t_mih, m_mih = timed(
        find_cross_set_duplicates, q, r, THRESHOLD, algorithm='mih')
    plain, t_plain, m_plain = timed(plain_broadcast, q, r, THRESHOLD)
    assert {(p.query_index, p.ref_index) for p in ours} == plain
    assert same_pairs(ours, ours_mih)
    per_pair = imagehash_loop_seconds_per_pair(q, r)
    t_loop = per_pair * len(q) * len(r)
    print(f'10,000 x 10,000 phash-64, flip-aware, threshold {THRESHOLD} '
          f'({len(ours)} pairs, identical sets):')
    print(f'  ours, tiled         {t_ours:8.2f} s  peak {m_ours:7.1f} MiB')
    print(f'  ours, multi-index   {t_mih:8.2f} s  peak {m_mih:7.1f} MiB')
    print(f'  plain numpy         {t_plain:8.2f} s  peak {m_plain:7.1f} MiB'
          f'  -> tiled {t_plain / t_ours:.1f}x faster')
    print(f'  ImageHash.__sub__   {t_loop:8.0f} s  (extrapolated from '
          f'300x300, {per_pair * 1e6:.1f} us/pair) -> tiled '
          f'{t_loop / t_ours:.0f}x faster')

    # 10^9 pairs: both exact methods, identical results
    mid = random_hashes(100_000, 2, 'm')
    for k in range(200):
        mid.hashes[k * 499] = r.hashes[k * 37] ^ np.uint64((1 << k % 12) - 1)
        mid.flipped[k * 491 + 7] = r.hashes[k * 41] ^ np.uint64(k % 5)
    tiled, t_tiled, _ = timed(
        find_cross_set_duplicates, mid, r, THRESHOLD, algorithm='tiled')
    fast, t_fast, m_fast = timed(
        find_cross_set_duplicates,
        mid,
        r,
        THRESHOLD,
        algorithm='mih',
        workers=2)
    assert same_pairs(tiled, fast) and len(tiled) >= 400
    pairs = len(mid) * len(r)
    print(f'100,000 x 10,000 (10^9 pairs, {len(tiled)} found, identical):')
    print(f'  tiled               {t_tiled:8.1f} s  '
          f'{pairs / t_tiled / 1e9:.2f} G flip-aware pairs/s')
    print(f'  multi-index (2 thr) {t_fast:8.1f} s  '
          f'{pairs / t_fast / 1e9:.2f} G flip-aware pairs/s  peak '
          f'{m_fast:.0f} MiB')

    big = random_hashes(args.big_rows, 3, 'b')
    ref = random_hashes(args.big_ref, 4, 'r')
    big.hashes[123_457 % args.big_rows] = ref.hashes[77]
    big.flipped[654_321 % args.big_rows] = ref.hashes[78] ^ np.uint64(0x3ff)
    c0 = time.process_time()
    found, t_big, m_big = timed(
        find_cross_set_duplicates,
        big,
        ref,
        THRESHOLD,
        algorithm='mih',
        workers=2)
    cpu_big = time.process_time() - c0
    got = {(p.query_index, p.ref_index, p.distance, p.variant) for p in found}
    assert (123_457 % args.big_rows, 77, 0, 'original') in got
    assert (654_321 % args.big_rows, 78, 10, 'flipped') in got
    pairs = args.big_rows * args.big_ref
    t_tiled_big = t_tiled * pairs / (len(mid) * len(r))
    print(f'{args.big_rows:,} x {args.big_ref:,} ({pairs:.1e} pairs, '
          f'{len(found)} found):')
    print(f'  multi-index (2 thr) {t_big:8.1f} s  cpu {cpu_big:.0f} s  '
          f'{pairs / t_big / 1e9:.1f} G flip-aware pairs/s  peak '
          f'{m_big:.0f} MiB traced during the search (hash arrays, made '
          f'before: {2 * big.hashes.nbytes / 2**20:.0f} MiB)')
    print(f'  tiled               {t_tiled_big:8.0f} s  (extrapolated from '
          f'10^9 pairs) -> multi-index {t_tiled_big / t_big:.0f}x faster')


if __name__ == '__main__':
    main()
