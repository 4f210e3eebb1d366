# Copyright (c) mmext contributors. All rights reserved.
"""Exact Hamming-radius search with a multi-index hash (Norouzi et al.,
"Fast Search in Hamming Space with Multi-Index Hashing", CVPR 2012).

Pigeonhole: split the ``B`` bits into parts of ``b_1 .. b_m`` bits with
radii ``r_1 .. r_m`` where ``sum(r_i + 1) = threshold + 1``. Two hashes at
most ``threshold`` bits apart are at most ``r_i`` apart in some part ``i``
(else they would differ in ``>= sum(r_i + 1)`` bits). So each indexed hash
is filed under each of its part values (a bucket table per part); a query
visits, per part, every bucket within ``r_i`` bits of its own part value
(``sum_k C(b_i, k)`` buckets), and every hash found there is checked with
its full distance. A pair is reported from the first part that found it,
so nothing is reported twice; nothing within ``threshold`` is missed, so
the result equals brute force exactly.

For 64-bit hashes against a 5 M-row block, 3 parts of 21-22 bits with
radii (3, 3, 2) at threshold 10 visit ~3.6 k buckets and check ~6 k
candidates per query, instead of 5 M distances. The indexed side is built
in equal blocks of at most :data:`BLOCK_ROWS` rows, so memory is bounded
whatever the set sizes (10 M x 100 k flip-aware: two 5 M-row blocks,
0.55 GiB peak traced; 10^12 pairs in 111 CPU seconds, 42x faster than the
tiled brute force, ``benchmarks/dedup_search.py``).

Neither imagehash nor imagededup has a sub-linear exact search
(imagededup compares all pairs in Cython, or walks a Python BK-tree);
faiss-cpu's binary multi-index is a C++ dependency. This is numpy only.
"""
import itertools
import math

import numpy as np

__all__ = ['plan_parts', 'mih_pairs', 'mih_cost', 'ball_masks']

#: Measured with ``python benchmarks/dedup_search.py --calibrate`` (CPU
#: seconds, one thread, numpy 2.4; 1 M indexed rows searched with 16-bit
#: parts (428 probes + 6.5 k candidates per query: 103 us) and with 21-22
#: bit parts (3.6 k probes + 1.3 k candidates: 144 us)): seconds per bucket
#: visited, per candidate checked, per indexed row and part to build, and
#: per pair in the tiled brute force of :mod:`mmext.dedup.search`. They
#: only choose the parts and between the two exact methods; results never
#: depend on them.
SEC_PER_PROBE = 35e-9
SEC_PER_CANDIDATE = 14e-9
SEC_PER_ROW_PART = 75e-9
SEC_PER_BUCKET = 3e-9
SEC_PER_BRUTE_PAIR = 1.0e-9

# Largest part: a bucket table of 2**22 int32 offsets (16 MiB).
_MAX_PART_BITS = 22
#: Indexed rows per block: ~40 bytes each while built (part keys, sorted
#: hashes, int32 permutation, for 3 parts), ~350 MiB at most in all.
BLOCK_ROWS = 1 << 23
# Bucket visits per query chunk (bounds the probe / candidate arrays).
_PROBES_PER_CHUNK = 1 << 20


def ball_masks(bits, radius):
    """All ``bits``-bit values with at most ``radius`` set bits (uint64),
    i.e. the XOR masks of a Hamming ball, fewest bits first."""
    masks = [0]
    for k in range(1, min(radius, bits) + 1):
        for pos in itertools.combinations(range(bits), k):
            masks.append(sum(1 << p for p in pos))
    return np.array(masks, dtype=np.uint64)


def _ball_size(bits, radius):
    return sum(math.comb(bits, k) for k in range(min(radius, bits) + 1))


def _split(num_bits, num_parts, threshold, max_bits=_MAX_PART_BITS):
    """Parts as ``(shift, bits, radius)``, widest first, radii summing to
    ``threshold + 1 - num_parts`` (wider parts get the larger radii). Bits
    beyond ``num_parts * max_bits`` are in no part (checked in the full
    distance only)."""
    used = min(num_bits, num_parts * max_bits)
    widths = [
        used // num_parts + (i < used % num_parts) for i in range(num_parts)
    ]
    extra = threshold + 1 - num_parts
    radii = [
        extra // num_parts + (i < extra % num_parts) for i in range(num_parts)
    ]
    parts, shift = [], 0
    for bits, radius in zip(widths, radii):
        parts.append((shift, bits, radius))
        shift += bits
    return parts


def mih_cost(parts, num_indexed, num_queries):
    """Estimated seconds to search ``num_indexed`` rows with
    ``num_queries`` queries (bucket tables + visits + checks)."""
    probes = sum(_ball_size(b, r) for _, b, r in parts)
    cands = sum(num_indexed * _ball_size(b, r) / 2.0**b for _, b, r in parts)
    build = (
        sum(2**b for _, b, _ in parts) * SEC_PER_BUCKET +
        len(parts) * num_indexed * SEC_PER_ROW_PART)
    return (num_queries *
            (probes * SEC_PER_PROBE + cands * SEC_PER_CANDIDATE) + build)


def plan_parts(num_bits, threshold, num_indexed, num_queries):
    """The cheapest valid split of ``num_bits`` for ``threshold``.

    Returns:
        tuple[list[tuple[int, int, int]] | None, float]: ``(shift, bits,
        radius)`` per part and the estimated seconds.
    """
    # no table much larger than the block: empty buckets cost memory
    # and visits but cut no candidates
    max_bits = min(_MAX_PART_BITS, max(8, int(num_indexed).bit_length() + 1))
    best, best_cost = None, math.inf
    for m in range(1, min(threshold + 1, num_bits) + 1):
        parts = _split(num_bits, m, threshold, max_bits)
        cost = mih_cost(parts, num_indexed, num_queries)
        if cost < best_cost:
            best, best_cost = parts, cost
    return best, best_cost


def _argsort_keys(keys, bits):
    """Stable argsort of non-negative ``bits``-bit keys: two 16-bit radix
    passes (numpy radix-sorts 16-bit ints), ~1.5x faster than one pass."""
    if bits <= 16:
        return np.argsort(keys.astype(np.uint16), kind='stable')
    low = bits // 2
    order = np.argsort(
        (keys & ((1 << low) - 1)).astype(np.uint16), kind='stable')
    high = (keys[order] >> low).astype(np.uint16)
    return order[np.argsort(high, kind='stable')]


class _Block:
    """Bucket tables of one block of indexed hashes: per part, the hashes
    sorted by part value, their block rows, and bucket offsets."""

    def __init__(self, hashes, parts):
        self.parts = parts
        self.masks = [ball_masks(b, r) for _, b, r in parts]
        self.tables = []
        for shift, bits, _ in parts:
            keys = ((hashes >> np.uint64(shift))
                    & np.uint64((1 << bits) - 1)).astype(np.int64)
            order = _argsort_keys(keys, bits)
            # int32 offsets: half the cache footprint of random bucket reads
            offsets = np.zeros((1 << bits) + 1, dtype=np.int32)
            np.cumsum(np.bincount(keys, minlength=1 << bits), out=offsets[1:])
            self.tables.append(
                (offsets, hashes[order], order.astype(np.int32)))


def _expand(starts, counts):
    """Concatenated ``arange(s, s + c)`` for every (start, count > 0)."""
    total = int(counts.sum())
    pos = np.ones(total, dtype=np.int64)
    if total == 0:
        return pos
    keep = counts > 0
    starts, counts = starts[keep], counts[keep]
    ends = np.cumsum(counts)
    pos[0] = starts[0]
    # at each run start jump from the previous run's last value
    pos[ends[:-1]] = starts[1:] - (starts[:-1] + counts[:-1] - 1)
    np.cumsum(pos, out=pos)
    return pos


def _search_chunk(block, q, threshold):
    """``(query_row, block_row, distance)`` of the pairs of one query chunk
    within ``threshold``, each once."""
    out = []
    parts = block.parts
    for p, ((shift, bits, _), masks,
            (offsets, hashes,
             order)) in enumerate(zip(parts, block.masks, block.tables)):
        key = (q >> np.uint64(shift)) & np.uint64((1 << bits) - 1)
        probe = (key[:, None] ^ masks[None, :]).astype(np.intp).ravel()
        starts = offsets[probe]
        counts = offsets[probe + 1] - starts
        pos = _expand(starts, counts)
        if not len(pos):
            continue
        # the query of each candidate, without materialising row numbers
        qval = np.repeat(np.repeat(q, len(masks)), counts)
        xor = hashes[pos] ^ qval
        dist = np.bitwise_count(xor)
        hit = np.flatnonzero(dist <= threshold)
        if not len(hit):
            continue
        xor, pos = xor[hit], pos[hit]
        first = np.ones(len(hit), dtype=bool)
        for s, b, r in parts[:p]:  # found by an earlier part already
            sub = (xor >> np.uint64(s)) & np.uint64((1 << b) - 1)
            first &= np.bitwise_count(sub) > r
        probe_of_hit = np.searchsorted(
            np.cumsum(counts), hit[first], side='right')
        out.append((probe_of_hit // len(masks), order[pos[first]],
                    dist[hit][first].astype(np.int64)))
    return out


def _search_block(block, queries, threshold, workers):
    """Yield ``(query_row, block_row, distance)`` arrays of every pair
    within ``threshold``, each once; query chunks run in ``workers``
    threads (numpy releases the GIL in the gathers and ufuncs)."""
    per_query = sum(len(m) for m in block.masks)
    step = max(1, _PROBES_PER_CHUNK // per_query)
    starts = range(0, len(queries), step)

    def run(q0):
        return q0, _search_chunk(block, queries[q0:q0 + step], threshold)

    if workers > 1 and len(starts) > 1:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(workers) as pool:
            results = pool.map(run, starts)
            for q0, found in results:
                for qi, ii, d in found:
                    yield qi + q0, ii.astype(np.int64), d
    else:
        for q0 in starts:
            for qi, ii, d in run(q0)[1]:
                yield qi + q0, ii.astype(np.int64), d


def mih_pairs(a,
              b,
              threshold,
              num_bits=64,
              block_rows=None,
              upper_only=False,
              workers=1):
    """Yield ``(i, j, d)`` arrays of every pair with
    ``popcount(a[i] ^ b[j]) = d <= threshold``, exactly.

    The larger side is indexed (in blocks of ``block_rows``), the smaller
    one queries it.

    Args:
        a (np.ndarray): ``(N,)`` or ``(N, 1)`` uint64 hashes.
        b (np.ndarray): ``(M,)`` or ``(M, 1)`` uint64 hashes.
        threshold (int): Largest distance reported.
        num_bits (int): Bits used in each word (the low ones). Defaults
            to 64.
        block_rows (int | None): Indexed rows per block. Defaults to
            :data:`BLOCK_ROWS`.
        upper_only (bool): Keep ``j > i`` only (``a`` and ``b`` index the
            same set). Defaults to False.
        workers (int): Threads. Defaults to 1.
    """
    a = np.ascontiguousarray(np.asarray(a, dtype=np.uint64).reshape(-1))
    b = np.ascontiguousarray(np.asarray(b, dtype=np.uint64).reshape(-1))
    if not len(a) or not len(b) or threshold < 0:
        return
    swap = len(a) > len(b)
    queries, indexed = (b, a) if swap else (a, b)
    # equal blocks: 10 M rows -> 2 x 5 M, not 8.4 M + 1.6 M
    num_blocks = -(-len(indexed) // int(block_rows or BLOCK_ROWS))
    block_rows = -(-len(indexed) // num_blocks)
    for i0 in range(0, len(indexed), block_rows):
        chunk = indexed[i0:i0 + block_rows]
        parts, _ = plan_parts(num_bits, threshold, len(chunk), len(queries))
        block = _Block(chunk, parts)
        found = _search_block(block, queries, threshold, workers)
        for qi, ii, d in found:
            ii = ii + i0
            i, j = (ii, qi) if swap else (qi, ii)
            if upper_only:
                keep = j > i
                i, j, d = i[keep], j[keep], d[keep]
            if len(i):
                yield i, j, d
