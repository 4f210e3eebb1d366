# Copyright (c) mmext contributors. All rights reserved.
"""The multi-index search equals brute force, pair for pair."""
import tracemalloc

import numpy as np
import pytest

import mmext.dedup.mih as mih
import mmext.dedup.search as search
from mmext.dedup import (HashResult, find_cross_set_duplicates,
                         find_within_set_duplicates, hamming_distances)


def random_hashes(n, seed, num_bits=64):
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64, n, dtype=np.uint64)
    return h >> np.uint64(64 - num_bits)


def with_near_copies(a, b, seed, num_bits=64, max_bits=14):
    """b with every third row replaced by a copy of a row of a with 0 ..
    max_bits bits flipped (pairs near and at every threshold)."""
    rng = np.random.default_rng(seed)
    b = b.copy()
    for k in range(0, min(len(a), len(b)), 3):
        flips = rng.choice(
            num_bits, rng.integers(0, max_bits + 1), replace=False)
        mask = sum(1 << int(f) for f in flips)
        b[k] = a[(7 * k) % len(a)] ^ np.uint64(mask)
    return b


def brute(a, b, threshold, upper_only=False):
    d = hamming_distances(a, b)
    ii, jj = np.nonzero(d <= threshold)
    if upper_only:
        keep = jj > ii
        ii, jj = ii[keep], jj[keep]
    return sorted(zip(ii.tolist(), jj.tolist(), d[ii, jj].tolist()))


def run(a, b, threshold, **kwargs):
    got = []
    for ii, jj, dd in mih.mih_pairs(a, b, threshold, **kwargs):
        got += zip(ii.tolist(), jj.tolist(), dd.tolist())
    return got


@pytest.mark.parametrize('num_bits,threshold', [(64, 0), (64, 1), (64, 4),
                                                (64, 10), (64, 20), (49, 4),
                                                (49, 10), (16, 1), (16, 3)])
def test_equals_brute_force(num_bits, threshold, monkeypatch):
    """Small blocks (several per side) and small query chunks exercise
    every seam; each pair comes once, with its distance."""
    monkeypatch.setattr(mih, '_PROBES_PER_CHUNK', 5000)
    a = random_hashes(700, 0, num_bits)
    b = with_near_copies(a, random_hashes(900, 1, num_bits), 2, num_bits)
    want = brute(a, b, threshold)
    assert len(want) >= 3 * (threshold >= 4)  # planted pairs are there
    for block_rows in (None, 250):
        got = run(a, b, threshold, num_bits=num_bits, block_rows=block_rows)
        assert len(got) == len(set(got)), 'a pair reported twice'
        assert sorted(got) == want
        # the larger side is indexed either way round
        swapped = run(
            b, a, threshold, num_bits=num_bits, block_rows=block_rows)
        assert sorted((j, i, d) for i, j, d in swapped) == want


def test_pairs_only_one_part_can_find():
    """For every part of the plan: a pair at exactly the threshold whose
    differences fill every other part one bit past its radius, so only
    that part's ball holds it (the pigeonhole bound is tight)."""
    threshold, rows = 10, 5000
    parts, _ = mih.plan_parts(64, threshold, rows, rows)
    assert len(parts) > 1
    a = random_hashes(rows, 3)
    b = random_hashes(rows, 4)
    planted = {}
    for p in range(len(parts)):
        mask = 0
        for k, (shift, bits, radius) in enumerate(parts):
            n = radius if k == p else radius + 1
            mask |= ((1 << n) - 1) << (shift + bits - n)
        assert bin(mask).count('1') == threshold
        b[100 + p] = a[200 + p] ^ np.uint64(mask)
        planted[(200 + p, 100 + p)] = threshold
    got = run(a, b, threshold)
    assert sorted(got) == brute(a, b, threshold)
    assert {(i, j): d for i, j, d in got if (i, j) in planted} == planted


def test_within_set_and_threads(monkeypatch):
    monkeypatch.setattr(mih, '_PROBES_PER_CHUNK', 3000)
    a = random_hashes(1200, 5)
    a = with_near_copies(a[::-1], a, 6)
    want = brute(a, a, 8, upper_only=True)
    assert want
    assert sorted(run(a, a, 8, upper_only=True)) == want
    assert sorted(run(a, a, 8, upper_only=True, workers=2)) == want


def result(hashes, flipped, prefix):
    return HashResult([f'{prefix}{i}' for i in range(len(hashes))],
                      hashes[:, None],
                      None if flipped is None else flipped[:, None])


@pytest.mark.parametrize('flip_side', ['query', 'reference', 'none'])
def test_search_api_same_pairs_as_tiled(flip_side):
    """find_*_duplicates give the same DuplicatePair lists (distance,
    variant, order) with either algorithm."""
    q, qf = random_hashes(600, 7), random_hashes(600, 8)
    r = with_near_copies(q, random_hashes(800, 9), 10)
    rf = with_near_copies(qf, random_hashes(800, 11), 12)
    r[1::3] = with_near_copies(qf, r, 13)[::3][:len(r[1::3])]
    query = result(q, qf if flip_side == 'query' else None, 'q')
    ref = result(r, rf if flip_side == 'reference' else None, 'r')
    tiled = find_cross_set_duplicates(query, ref, algorithm='tiled')
    assert len(tiled) > 100
    assert find_cross_set_duplicates(query, ref, algorithm='mih') == tiled
    within = result(np.concatenate([q, r]), np.concatenate([qf, rf]), 's')
    tiled = find_within_set_duplicates(within, algorithm='tiled')
    assert len(tiled) > 100
    assert find_within_set_duplicates(within, algorithm='mih') == tiled


def test_auto_choice_and_refusals():
    small = result(random_hashes(50, 14), None, 'a')
    big = result(random_hashes(200_000, 15), None, 'b')
    assert search._choose('auto', small.hashes, small.hashes, 10, 64) == \
        'tiled'
    assert search._choose('auto', big.hashes, small.hashes[:40], 10, 64) == \
        'tiled'
    big_ref = random_hashes(20_000, 16)[:, None]
    assert search._choose('auto', big.hashes, big_ref, 10, 64) == 'mih'
    # a large threshold makes the multi-index slower than brute force
    assert search._choose('auto', big.hashes, big_ref, 28, 64) == 'tiled'
    wide = np.zeros((4, 4), np.uint64)
    assert search._choose('auto', wide, wide, 10, 256) == 'tiled'
    with pytest.raises(ValueError, match='at most 64 bits.*tiled'):
        search._choose('mih', wide, wide, 10, 256)
    with pytest.raises(ValueError, match='unknown search algorithm'):
        find_cross_set_duplicates(small, small, algorithm='faiss')


def test_memory_bounded_by_block(monkeypatch):
    """Peak traced memory depends on the block size, not on the number of
    indexed rows."""
    monkeypatch.setattr(mih, 'BLOCK_ROWS', 40_000)
    queries = random_hashes(500, 17)
    peaks = []
    for rows in (80_000, 320_000):
        indexed = random_hashes(rows, 18)
        indexed[rows - 1] = queries[3]
        tracemalloc.start()
        got = run(queries, indexed, 6)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert (3, rows - 1, 0) in got
    assert peaks[1] < 1.3 * peaks[0], peaks
