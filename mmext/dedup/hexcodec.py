# Copyright (c) mmext contributors. All rights reserved.
"""imagehash's hex strings of packed hashes, and back.

A hash is packed row-major, most significant bit first, into ``uint64``
words with zero bits padded at the front (:func:`mmext.dedup.hashing.
pack_bits`); :func:`hash_to_hex` of it is exactly ``str(imagehash.phash(
img))``. The cache (:mod:`mmext.dedup.cache`) stores hashes in this form
and :mod:`mmext.dedup.hashing` prints them; both import this module, which
imports neither.
"""
import numpy as np

__all__ = ['hash_to_hex', 'hex_to_words']


def hash_to_hex(words, num_bits):
    """imagehash's hex string of a packed hash.

    Args:
        words (np.ndarray): ``(W,)`` uint64 words of one hash.
        num_bits (int): Bits in the hash (``hash_size ** 2``).

    Returns:
        str: ``ceil(num_bits / 4)`` lower-case hex digits.

    Example:
        >>> hash_to_hex(np.array([0x8000000000000001], np.uint64), 64)
        '8000000000000001'
    """
    value = 0
    for w in np.asarray(words, dtype=np.uint64):
        value = (value << 64) | int(w)
    return '{:0>{width}x}'.format(value, width=-(-num_bits // 4))


def hex_to_words(hex_str, num_bits):
    """Inverse of :func:`hash_to_hex`: the ``(ceil(num_bits / 64),)``
    uint64 words of a hex string."""
    num_words = -(-num_bits // 64)
    value = int(hex_str, 16)
    return np.array([(value >> (64 * (num_words - 1 - i))) & (2**64 - 1)
                     for i in range(num_words)],
                    dtype=np.uint64)
