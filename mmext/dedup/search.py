# Copyright (c) mmext contributors. All rights reserved.
"""Hamming-radius search between two sets of packed hashes.

Exact: every pair within ``threshold`` bits is returned, by one of two
methods that give identical results:

* ``'tiled'`` brute force: the distance matrix is built tile by tile (XOR
  of ``uint64`` words, then ``np.bitwise_count``) into reused buffers, so
  memory is bounded by the tile size, not by ``len(query) *
  len(reference)``;
* ``'mih'``: a multi-index hash (:mod:`mmext.dedup.mih`), sub-linear for
  single-word (<= 64-bit) hashes and small thresholds: 10 M x 100 k
  flip-aware phashes at threshold 10 in minutes instead of hours.

``'auto'`` (the default) takes the multi-index when its cost model
(measured constants in :mod:`mmext.dedup.mih`) predicts it at least twice
as fast. imagehash offers only a per-pair ``ImageHash.__sub__`` (~16 µs per
pair in Python).

Default threshold (64-bit phash), measured with
``python benchmarks/dedup_hashing.py --thresholds`` on the 22 images of
``mmext.testing.sample_photos()`` (each vs its edited copies; distinct
images vs each other, originals and mirrors)::

    edit                  max  median      distinct pairs (n=231)
    JPEG q70 / q40          2 / 4   0      min 20, median 28
    resize 0.5 / 0.75 / 1.5 4 / 2 / 2  0
    brightness +10 %        6      0
    crop 3 % (centre)      14      4       (textures: brick 14)
    crop 5 % (one corner)  20     10
    mirror (flipped hash)   0      0

``DEFAULT_THRESHOLD = 10`` is half the closest distinct pair: it catches
every re-encode, resize, brightness change and mirror copy, most crops of
up to ~3 %, and leaves a 10-bit margin against false matches (Flowers-17 /
102 images of one species look alike, so the margin matters more there
than on these 22 images). Larger crops need a larger threshold and a look
at the HTML report. Other methods separate distinct images less well (min
distinct: dhash 12, ahash 11, whash 8), hence lower defaults
(:func:`default_threshold`).

The threshold does not depend on the decode mode. ``hash_images(...,
decode='fast')`` (JPEGs decoded at up to 1/8 scale while the short side
stays >= 64 px, luma only, :mod:`mmext.dedup.decode`) measured with
``python benchmarks/dedup_hashing.py --recall`` (the 22 photos as JPEG
q90, 110 planted JPEG copies; a small run at load 6.6 on 2 cores)::

    copies found at 10 (max distance)  exact        fast
    mirror                             22/22 (2)    22/22 (8)
    JPEG q70                           22/22 (2)    22/22 (2)
    resize 0.5                         22/22 (2)    22/22 (4)
    centre crop 3 % / 5 %              21 / 18      21 / 19
    false pairs (distinct / copy-other) 0/231 0/2310  0/231 0/2310
    closest distinct pair              20           20

Planted-pair distances move by 0.67 bits on average (max 6) and a file's
own hash by ~1 bit (max 10): recall at 10 is the exact mode's, but a
mirrored copy keeps a smaller margin (8 instead of 2: the DCT-domain
downscale of the mirror image is not the mirror of the downscale).
"""
from dataclasses import asdict, dataclass
from typing import List

import numpy as np

from . import mih

__all__ = [
    'ALGORITHMS', 'DEFAULT_THRESHOLD', 'DuplicatePair', 'default_threshold',
    'find_cross_set_duplicates', 'find_within_set_duplicates',
    'hamming_distances'
]

#: Hamming threshold for 64-bit phash; see the module docstring.
DEFAULT_THRESHOLD = 10

# Measured 64-bit defaults per method (same protocol as DEFAULT_THRESHOLD).
_DEFAULTS_64 = {'phash': 10, 'dhash': 6, 'ahash': 6, 'whash': 4}

# A tile is chunk_size x _TILE_COLS pairs. 128 x 4096 (4 MiB uint64 XOR
# buffer, cache-resident) measured 2x faster here than 1000 x 10000.
_TILE_COLS = 4096

ALGORITHMS = ('auto', 'tiled', 'mih')


@dataclass
class DuplicatePair:
    """One matched pair.

    Attributes:
        query_path (str): File from the query set (the first of the pair
            in within-set search).
        ref_path (str): File from the reference set (the second).
        distance (int): Hamming distance of the best-matching variant.
        variant (str): 'original' (hash vs hash) or 'flipped' (the mirror
            image of one vs the other).
        query_index (int): Index into ``query.paths``.
        ref_index (int): Index into ``reference.paths``.
    """
    query_path: str
    ref_path: str
    distance: int
    variant: str
    query_index: int
    ref_index: int

    def to_dict(self):
        return asdict(self)


def default_threshold(method='phash', hash_size=8):
    """The measured 64-bit threshold of ``method``, scaled to
    ``hash_size**2`` bits."""
    if method not in _DEFAULTS_64:
        raise ValueError(f'unknown hash method {method!r}; choose one of '
                         f'{", ".join(_DEFAULTS_64)}')
    return int(round(_DEFAULTS_64[method] * hash_size * hash_size / 64))


def hamming_distances(a, b):
    """Full ``(len(a), len(b))`` distance matrix of packed hashes (small
    inputs only: memory is not bounded)."""
    a, b = _as_words(a), _as_words(b)
    return np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(
        -1, dtype=np.int64)


def _as_words(x):
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.dtype != np.uint64:
        raise TypeError(f'hashes must be uint64 words (HashResult.hashes), '
                        f'got {x.dtype}')
    return np.ascontiguousarray(x)


def _pairs_within(a, b, threshold, chunk_size, upper_only=False):
    """Yield ``(i, j, d)`` arrays of pairs with ``d <= threshold``.

    ``upper_only`` keeps ``j > i`` (a and b are the same set)."""
    a, b = _as_words(a), _as_words(b)
    num_words = a.shape[1]
    rows, cols = max(1, int(chunk_size)), _TILE_COLS
    xor = np.empty((rows, cols), dtype=np.uint64)
    cnt = np.empty((rows, cols), dtype=np.uint8)
    acc = np.empty((rows, cols), dtype=np.uint16) if num_words > 1 else None
    hit = np.empty((rows, cols), dtype=bool)
    for r0 in range(0, len(a), rows):
        ra = a[r0:r0 + rows]
        c_start = r0 if upper_only else 0
        for c0 in range(c_start, len(b), cols):
            cb = b[c0:c0 + cols]
            n, m = len(ra), len(cb)
            x, k, h = xor[:n, :m], cnt[:n, :m], hit[:n, :m]
            if acc is None:
                np.bitwise_xor(ra[:, 0, None], cb[None, :, 0], out=x)
                np.bitwise_count(x, out=k)
                dist = k
            else:
                dist = acc[:n, :m]
                dist.fill(0)
                for w in range(num_words):
                    np.bitwise_xor(ra[:, w, None], cb[None, :, w], out=x)
                    np.bitwise_count(x, out=k)
                    np.add(dist, k, out=dist)
            np.less_equal(dist, threshold, out=h)
            # matches are rare: a SIMD count skips the (4x slower) nonzero
            if not np.count_nonzero(h):
                continue
            ii, jj = np.nonzero(h)
            if upper_only:
                keep = jj + c0 > ii + r0
                ii, jj = ii[keep], jj[keep]
            if len(ii):
                yield ii + r0, jj + c0, dist[ii, jj].astype(np.int64)


def _choose(algorithm, a, b, threshold, num_bits):
    """'tiled' or 'mih' for searching ``a`` against ``b``."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f'unknown search algorithm {algorithm!r}; choose '
                         f'one of {", ".join(ALGORITHMS)}')
    one_word = a.ndim == 1 or a.shape[1] == 1
    if algorithm == 'mih' and not one_word:
        raise ValueError(f'the multi-index search takes hashes of at most 64 '
                         f'bits, got {num_bits}: use algorithm="tiled"')
    if algorithm != 'auto':
        return algorithm
    if not one_word or not len(a) or not len(b):
        return 'tiled'
    small, large = sorted((len(a), len(b)))
    _, cost = mih.plan_parts(num_bits, threshold, min(large, mih.BLOCK_ROWS),
                             small)
    cost *= -(-large // mih.BLOCK_ROWS)
    brute = len(a) * len(b) * mih.SEC_PER_BRUTE_PAIR
    return 'mih' if 2 * cost < brute else 'tiled'


def _pairs(a,
           b,
           threshold,
           chunk_size,
           upper_only=False,
           num_bits=64,
           algorithm='auto',
           workers=1):
    """:func:`_pairs_within` or :func:`mih.mih_pairs` (same pairs)."""
    a, b = _as_words(a), _as_words(b)
    if _choose(algorithm, a, b, threshold, num_bits) == 'mih':
        return mih.mih_pairs(
            a, b, threshold, num_bits, upper_only=upper_only, workers=workers)
    return _pairs_within(a, b, threshold, chunk_size, upper_only)


def _check_compatible(a, b):
    if (a.method, a.hash_size) != (b.method, b.hash_size):
        raise ValueError(
            f'cannot compare {a.method} hash_size {a.hash_size} hashes with '
            f'{b.method} hash_size {b.hash_size}: hash both sets with the '
            'same method and hash_size')


def _collect(found):
    """Merge per-variant hits, keeping the smallest distance per pair
    ('original' wins ties)."""
    best = {}
    for variant, gen in found:
        for ii, jj, dd in gen:
            for i, j, d in zip(ii.tolist(), jj.tolist(), dd.tolist()):
                old = best.get((i, j))
                if old is None or d < old[0]:
                    best[(i, j)] = (d, variant)
    return best


def _to_pairs(best, query, reference):
    pairs = [
        DuplicatePair(query.paths[i], reference.paths[j], d, v, i, j)
        for (i, j), (d, v) in best.items()
    ]
    pairs.sort(key=lambda p: (p.distance, p.query_index, p.ref_index))
    return pairs


def find_cross_set_duplicates(query,
                              reference,
                              threshold=DEFAULT_THRESHOLD,
                              chunk_size=128,
                              algorithm='auto',
                              workers=1) -> List[DuplicatePair]:
    """Every (query, reference) pair within ``threshold`` bits.

    With flip-aware hashes (``flip=True``, the default of
    :func:`~mmext.dedup.hash_images`) the mirror image of each query is
    compared too (or, when only the reference has mirrors, the mirror image
    of each reference); mirroring both sides adds nothing (it equals
    comparing the originals up to resampling noise).

    Args:
        query (HashResult): e.g. the extra training images.
        reference (HashResult): e.g. the held-out test images.
        threshold (int): Largest Hamming distance reported. Defaults to
            :data:`DEFAULT_THRESHOLD` (10, measured for 64-bit phash; use
            :func:`default_threshold` for other methods / sizes).
        chunk_size (int): Query rows per tile of the tiled search; its work
            buffers take ``chunk_size * 4096 * 12`` bytes (6 MiB at the
            default 128) whatever the set sizes.
        algorithm (str): 'auto', 'tiled' or 'mih' (see the module
            docstring); the pairs are the same. Defaults to 'auto'.
        workers (int): Threads of the multi-index search. Defaults to 1.

    Returns:
        list[DuplicatePair]: sorted by distance, then query and reference
        index.

    Example:
        >>> pairs = find_cross_set_duplicates(  # doctest: +SKIP
        ...     hash_images(train_paths), hash_images(test_paths))
        >>> pairs[0].distance, pairs[0].variant  # doctest: +SKIP
        (2, 'original')
    """
    _check_compatible(query, reference)
    kwargs = dict(
        threshold=threshold,
        chunk_size=chunk_size,
        num_bits=query.num_bits,
        algorithm=algorithm,
        workers=workers)
    found = [('original', _pairs(query.hashes, reference.hashes, **kwargs))]
    if query.flipped is not None:
        found.append(
            ('flipped', _pairs(query.flipped, reference.hashes, **kwargs)))
    elif reference.flipped is not None:
        found.append(
            ('flipped', _pairs(query.hashes, reference.flipped, **kwargs)))
    return _to_pairs(_collect(found), query, reference)


def find_within_set_duplicates(hashes,
                               threshold=DEFAULT_THRESHOLD,
                               chunk_size=128,
                               algorithm='auto',
                               workers=1) -> List[DuplicatePair]:
    """Every pair ``i < j`` of one set within ``threshold`` bits.

    Args:
        hashes (HashResult): The set.
        threshold (int): See :func:`find_cross_set_duplicates`.
        chunk_size (int): Rows per tile of the tiled search.
        algorithm (str): 'auto', 'tiled' or 'mih'. Defaults to 'auto'.
        workers (int): Threads of the multi-index search. Defaults to 1.

    Returns:
        list[DuplicatePair]: ``query_path`` is the earlier file of each
        pair, ``ref_path`` the later one.
    """
    kwargs = dict(
        threshold=threshold,
        chunk_size=chunk_size,
        upper_only=True,
        num_bits=hashes.num_bits,
        algorithm=algorithm,
        workers=workers)
    found = [('original', _pairs(hashes.hashes, hashes.hashes, **kwargs))]
    if hashes.flipped is not None:
        # mirror(i) vs j and mirror(j) vs i differ by resampling noise:
        # take both, the smaller distance wins
        found.append(('flipped', _pairs(hashes.flipped, hashes.hashes,
                                        **kwargs)))
        found.append(('flipped', _pairs(hashes.hashes, hashes.flipped,
                                        **kwargs)))
    return _to_pairs(_collect(found), hashes, hashes)
