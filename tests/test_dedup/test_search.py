# Copyright (c) mmext contributors. All rights reserved.
import tracemalloc

import imagehash
import numpy as np
import pytest
from PIL import Image

import mmext.dedup.search as search
from mmext.dedup import (DEFAULT_THRESHOLD, HashResult, default_threshold,
                         find_cross_set_duplicates, find_within_set_duplicates,
                         hash_images)
from mmext.testing.data import class_image


def random_set(n, num_words, seed, flip=True, prefix='q'):
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64, (n, num_words), dtype=np.uint64)
    f = rng.integers(0, 2**64, (n, num_words), dtype=np.uint64)
    return HashResult([f'{prefix}{i}' for i in range(n)],
                      h,
                      f if flip else None,
                      num_bits=64 * num_words)


def plant(x, bits, seed):
    """x with ``bits`` random bits flipped (a near duplicate)."""
    rng = np.random.default_rng(seed)
    x = x.copy()
    for pos in rng.choice(64 * x.size, bits, replace=False):
        x[pos // 64] ^= np.uint64(1) << np.uint64(pos % 64)
    return x


def popcount(words_a, words_b):
    """Reference distance with Python ints (independent of numpy)."""
    return sum(
        bin(int(a) ^ int(b)).count('1') for a, b in zip(words_a, words_b))


def brute_cross(q, r, thr):
    out = {}
    for i in range(len(q)):
        for j in range(len(r)):
            cands = [(popcount(q.hashes[i], r.hashes[j]), 'original')]
            if q.flipped is not None:
                cands.append((popcount(q.flipped[i], r.hashes[j]), 'flipped'))
            d, v = min(cands, key=lambda c: (c[0], c[1] != 'original'))
            if d <= thr:
                out[(i, j)] = (d, v)
    return out


@pytest.mark.parametrize('num_words,thr,algorithm', [(1, 10, 'tiled'),
                                                     (4, 100, 'tiled'),
                                                     (1, 10, 'mih')])
def test_cross_set_equals_brute_force(num_words, thr, algorithm, monkeypatch):
    """Tiny tiles (7 x 5) exercise every tile edge; the result equals a
    pure-Python all-pairs loop, including planted near duplicates in both
    variants."""
    monkeypatch.setattr(search, '_TILE_COLS', 7)
    q = random_set(23, num_words, 0)
    r = random_set(31, num_words, 1, prefix='r')
    r.hashes[4] = plant(q.hashes[9], 3, 0)
    r.hashes[30] = plant(q.flipped[22], 6, 1)  # mirror copy of q22
    r.hashes[12] = plant(q.hashes[0], thr, 2)  # exactly at the threshold
    r.hashes[13] = plant(q.hashes[1], thr + 1, 3)  # just beyond
    pairs = find_cross_set_duplicates(
        q, r, threshold=thr, chunk_size=5, algorithm=algorithm)
    got = {(p.query_index, p.ref_index): (p.distance, p.variant)
           for p in pairs}
    assert got == brute_cross(q, r, thr)
    assert got[(9, 4)] == (3, 'original')
    assert got[(22, 30)] == (6, 'flipped')
    assert got[(0, 12)] == (thr, 'original')
    assert (1, 13) not in got
    assert [p.distance for p in pairs] == sorted(p.distance for p in pairs)
    assert pairs[0].query_path == f'q{pairs[0].query_index}'
    assert pairs[0].ref_path == f'r{pairs[0].ref_index}'


def test_within_set_equals_brute_force(monkeypatch):
    monkeypatch.setattr(search, '_TILE_COLS', 6)
    s = random_set(40, 1, 5)
    s.hashes[30] = plant(s.hashes[2], 4, 0)
    s.hashes[7] = plant(s.flipped[33], 2, 1)  # 7 is a mirror copy of 33
    s.hashes[39] = s.hashes[38]
    pairs = find_within_set_duplicates(
        s, threshold=DEFAULT_THRESHOLD, chunk_size=4)
    got = {(p.query_index, p.ref_index): (p.distance, p.variant)
           for p in pairs}
    expected = {}
    for i in range(40):
        for j in range(i + 1, 40):
            d = [(popcount(s.hashes[i], s.hashes[j]), 'original'),
                 (popcount(s.flipped[i], s.hashes[j]), 'flipped'),
                 (popcount(s.hashes[i], s.flipped[j]), 'flipped')]
            best = min(d, key=lambda c: (c[0], c[1] != 'original'))
            if best[0] <= DEFAULT_THRESHOLD:
                expected[(i, j)] = best
    assert got == expected
    assert got[(2, 30)] == (4, 'original')
    assert got[(7, 33)] == (2, 'flipped')
    assert got[(38, 39)] == (0, 'original')


def test_search_memory_is_bounded():
    """50,000 x 2,000 pairs: a full distance matrix would take 100 MB;
    the tiled search stays within its ~6 MB of buffers."""
    q = random_set(50_000, 1, 11, flip=False)
    r = random_set(2_000, 1, 12, flip=False, prefix='r')
    r.hashes[1500] = q.hashes[41_234]
    tracemalloc.start()
    pairs = find_cross_set_duplicates(q, r, threshold=4, algorithm='tiled')
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [(p.query_index, p.ref_index) for p in pairs] == [(41_234, 1500)]
    assert peak < 16 * 2**20, f'peak {peak / 2**20:.1f} MiB'


def test_incompatible_hashes_rejected():
    a = random_set(3, 1, 0)
    b = random_set(3, 1, 1)
    b.method = 'dhash'
    with pytest.raises(ValueError, match='same method and hash_size'):
        find_cross_set_duplicates(a, b)
    with pytest.raises(TypeError, match='uint64'):
        search.hamming_distances(
            np.zeros((2, 1), np.int64), np.zeros((2, 1), np.int64))


def test_default_threshold_scales_with_bits():
    assert default_threshold() == DEFAULT_THRESHOLD == 10
    assert default_threshold('phash', 16) == 40
    assert default_threshold('whash', 8) < default_threshold('phash', 8)
    with pytest.raises(ValueError, match='unknown hash method'):
        default_threshold('md5')


def test_planted_copies_found_and_distinct_not(planted):
    """Re-encoded, resized, 4-5 % cropped and mirrored copies of real
    photos are all found (mirrors via the flipped hash); no distinct photo
    is reported. Distances are checked against imagehash's own."""
    import os.path as osp
    root17, root102 = planted['root17'], planted['root102']
    held = sorted(str(p) for p in (root17 / 'jpg').iterdir())
    train = sorted(str(p) for p in (root102 / 'jpg').iterdir())
    q = hash_images(train, workers=0, progress=False)
    r = hash_images(held, workers=0, progress=False)
    pairs = find_cross_set_duplicates(q, r)
    got = {
        osp.relpath(p.query_path, root102).replace(osp.sep, '/'):
        (osp.basename(p.ref_path), p.variant == 'flipped', p.distance)
        for p in pairs
    }
    assert len(pairs) == len(got)  # one held-out match per planted copy
    assert {k: v[:2] for k, v in got.items()} == planted['expected']
    for rel, (ref_name, flipped, dist) in got.items():
        img = Image.open(root102 / rel)
        if flipped:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        ref = imagehash.phash(Image.open(root17 / 'jpg' / ref_name))
        assert imagehash.phash(img) - ref == dist <= DEFAULT_THRESHOLD
    # the mirrored copies are not found without the flipped hash
    q_noflip = hash_images(train, flip=False, workers=0, progress=False)
    r_noflip = hash_images(held, flip=False, workers=0, progress=False)
    plain = find_cross_set_duplicates(q_noflip, r_noflip)
    assert {osp.basename(p.query_path)
            for p in plain} == {
                k.split('/')[-1]
                for k, v in planted['expected'].items() if not v[1]
            }


def test_flat_images_never_match(tmp_path):
    """imagehash gives two different flat images the same phash; here they
    have no hash and so no pair."""
    Image.new('RGB', (40, 40), (10, 10, 10)).save(tmp_path / 'a.png')
    Image.new('RGB', (60, 30), (250, 250, 250)).save(tmp_path / 'b.png')
    class_image(0, 0).save(tmp_path / 'c.png')
    assert (imagehash.phash(Image.open(tmp_path / 'a.png')) == imagehash.phash(
        Image.open(tmp_path / 'b.png')))
    q = hash_images([tmp_path / 'a.png', tmp_path / 'c.png'],
                    workers=0,
                    progress=False)
    r = hash_images([tmp_path / 'b.png'], workers=0, progress=False)
    assert find_cross_set_duplicates(q, r) == []
    assert len(q.skipped) == 1 and len(r.skipped) == 1


def test_reference_side_flips_and_empty_sets():
    """A query hashed without flips still matches mirror copies when the
    reference has flipped hashes; empty sets give no pairs."""
    q = random_set(5, 1, 20, flip=False)
    r = random_set(6, 1, 21, prefix='r')
    r.flipped[3] = plant(q.hashes[2], 1, 0)
    pairs = find_cross_set_duplicates(q, r)
    assert [(p.query_index, p.ref_index, p.distance, p.variant)
            for p in pairs] == [(2, 3, 1, 'flipped')]
    empty = random_set(0, 1, 22)
    assert find_cross_set_duplicates(empty, r) == []
    assert find_cross_set_duplicates(q, empty) == []
    assert find_within_set_duplicates(empty) == []
