# Copyright (c) mmext contributors. All rights reserved.
"""phash of an image and its mirror from one resize, imagehash-exact."""
import imagehash
import numpy as np
import pytest
from PIL import Image, ImageStat

import mmext.dedup.phash_pair as phash_pair_mod
from mmext.dedup.phash_pair import (gray_std, phash_pair,
                                    resize_commutes_with_mirror)

FLIP = Image.Transpose.FLIP_LEFT_RIGHT


def commutes_on(img, size, resample):
    a = np.asarray(img.transpose(FLIP).resize((size, size), resample))
    b = np.asarray(img.resize((size, size), resample))[:, ::-1]
    return np.array_equal(a, b)


def test_check_tells_symmetric_from_asymmetric_resampling(monkeypatch):
    """NEAREST picks ``int((xx + 0.5) * scale)``: not mirror-symmetric for
    most widths, and the check says so exactly where a random image shows
    the mirror does not commute; LANCZOS passes for every width."""
    rng = np.random.default_rng(0)
    assert all(resize_commutes_with_mirror(w, 32) for w in range(1, 700))
    assert all(
        resize_commutes_with_mirror(w, s) for w in (375, 500, 1023)
        for s in (8, 16, 64))
    resize_commutes_with_mirror.cache_clear()
    monkeypatch.setattr(phash_pair_mod, '_LANCZOS', Image.Resampling.NEAREST)
    verdicts = {}
    for width in (33, 40, 50, 64, 96, 100, 375, 500):
        img = Image.fromarray(rng.integers(0, 256, (40, width), np.uint8))
        verdicts[width] = resize_commutes_with_mirror(width, 32)
        assert verdicts[width] == commutes_on(img, 32,
                                              Image.Resampling.NEAREST)
    resize_commutes_with_mirror.cache_clear()
    assert set(verdicts.values()) == {True, False}


@pytest.mark.parametrize('commutes', [True, False])
def test_pair_equals_imagehash_of_the_mirror(photos, commutes, monkeypatch):
    """Both paths (thumbnail mirrored / image mirrored and resized again)
    give imagehash's bits, on crops of every width parity."""
    calls = []

    def check(width, size):
        calls.append(width)
        return commutes

    monkeypatch.setattr(phash_pair_mod, 'resize_commutes_with_mirror', check)
    rng = np.random.default_rng(1)
    for name in ('astronaut', 'chelsea', 'coffee', 'brick', 'text'):
        gray = photos[name].convert('L')
        for _ in range(3):
            w = int(rng.integers(20, gray.width))
            h = int(rng.integers(20, gray.height))
            crop = gray.crop((0, 0, w, h))
            for hash_size in (4, 8, 12):
                bits, flipped = phash_pair(crop, hash_size)
                assert np.array_equal(bits,
                                      imagehash.phash(crop, hash_size).hash)
                assert np.array_equal(
                    flipped,
                    imagehash.phash(crop.transpose(FLIP), hash_size).hash)
                only, none = phash_pair(crop, hash_size, flip=False)
                assert np.array_equal(only, bits) and none is None
    assert calls  # the check decided every flipped hash


def test_gray_std_is_imagestat(photos):
    for name in ('astronaut', 'moon', 'text'):
        gray = photos[name].convert('L')
        assert gray_std(gray) == ImageStat.Stat(gray).stddev[0]
    flat = Image.new('L', (9, 7), 200)
    assert gray_std(flat) == ImageStat.Stat(flat).stddev[0] == 0.0
