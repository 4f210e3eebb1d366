# Copyright (c) mmext contributors. All rights reserved.
"""The hash hex codec stands alone: the cache and the hasher import it,
and the cache does not import the hasher (no import cycle)."""
import ast
import os.path as osp

import imagehash
import numpy as np

from mmext.dedup import hash_pil_image
from mmext.dedup.hexcodec import hash_to_hex, hex_to_words
from tests.conftest import ROOT

DEDUP = osp.join(ROOT, 'mmext', 'dedup')


def _imported_modules(name):
    """Modules ``mmext/dedup/<name>.py`` imports, anywhere in the file
    (function-level imports included), as dotted names."""
    tree = ast.parse(open(osp.join(DEDUP, f'{name}.py')).read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = ('mmext.dedup.' if node.level == 1 else '') + (
                node.module or '')
            found.add(base.rstrip('.'))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_cache_hashing_cycle():
    assert 'mmext.dedup.hashing' not in _imported_modules('cache')
    assert 'mmext.dedup.hexcodec' in _imported_modules('cache')
    assert not {
        m
        for m in _imported_modules('hexcodec') if m.startswith('mmext')
    }


def test_cache_and_hasher_share_the_codec():
    from mmext.dedup import cache, hashing, hexcodec
    assert cache.hash_to_hex is hexcodec.hash_to_hex is hashing.hash_to_hex
    assert cache.hex_to_words is hexcodec.hex_to_words


def test_hex_is_imagehash_str(photos):
    """The codec's hex is ``str(ImageHash)`` for 64- and 256-bit hashes,
    and decodes back to the packed words."""
    img = photos['coffee'].convert('L')
    for hash_size in (8, 16):
        words, _ = hash_pil_image(img, 'phash', hash_size, flip=False)
        want = str(imagehash.phash(img, hash_size=hash_size))
        n = hash_size * hash_size
        assert hash_to_hex(words, n) == want
        assert np.array_equal(hex_to_words(want, n), words)


def test_leading_zero_digits_kept():
    words = np.array([0, 1], np.uint64)
    assert hash_to_hex(words, 100) == '0' * 24 + '1'
    assert hash_to_hex(np.array([5], np.uint64), 36) == '000000005'
    assert np.array_equal(hex_to_words('000000005', 36), [5])
