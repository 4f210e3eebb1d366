# Copyright (c) mmext contributors. All rights reserved.
"""imagehash's phash of an image and of its mirror image from one resize.

``imagehash.phash`` is ``convert('L')``, a LANCZOS resize to ``4 * hash_size``
squared, ``scipy.fftpack.dct`` along axis 0 then 1, and bits = low
frequencies > their median. Hashing the mirror image the obvious way
repeats the transpose and the resize (about half the cost of a
flip-aware hash after decoding). Here the mirror's thumbnail is the
thumbnail's mirror, which is bit-exact exactly when Pillow's integer
resampling coefficients for that input width are mirror-symmetric:

    out[xx] = (2**21 + sum_x in[x] * C[x, xx]) >> 22  (clipped to 0..255)

so ``C[x, xx] == C[W - 1 - x, S - 1 - xx]`` for all ``x, xx`` makes the
horizontal pass commute with the mirror in integer arithmetic, and the
vertical pass (the same for every column) always does.
:func:`resize_commutes_with_mirror` reads ``C`` exactly from Pillow itself
(an impulse of ``2**22`` in an int32 image resizes to ``round(k * 2**22)``,
the same rounding Pillow applies to the 8-bit coefficients), once per
width; widths that fail take the transpose-and-resize path. The DCTs and
medians are imagehash's own calls on the same arrays, so the bits are
imagehash's bit for bit (checked in tests against ``imagehash.phash`` of
the transposed image).
"""
import math
from functools import lru_cache

import numpy as np
import scipy.fftpack
from PIL import Image

__all__ = ['phash_pair', 'resize_commutes_with_mirror', 'gray_std']

_LANCZOS = Image.Resampling.LANCZOS
_MIRROR = Image.Transpose.FLIP_LEFT_RIGHT
# Pillow's PRECISION_BITS for 8-bit resampling coefficients (32 - 8 - 2).
_PRECISION = 22
# Probe rows per resize (bounds the probe image to 256 x width x 4 bytes).
_PROBE_ROWS = 256
_MAX_CHECKED_WIDTH = 4096


@lru_cache(maxsize=4096)
def resize_commutes_with_mirror(width, size):
    """Whether a LANCZOS resize of a ``width``-pixel-wide 8-bit image to
    ``size`` columns commutes bit for bit with a horizontal mirror.

    Reads Pillow's fixed-point coefficients (rows of an identity of
    impulses ``2**22``, resized horizontally only) and checks their
    mirror symmetry.
    """
    coeffs = []
    for x0 in range(0, width, _PROBE_ROWS):
        rows = min(_PROBE_ROWS, width - x0)
        probe = np.zeros((rows, width), dtype=np.int32)
        probe[np.arange(rows), x0 + np.arange(rows)] = 1 << _PRECISION
        img = Image.fromarray(probe, mode='I')
        coeffs.append(np.asarray(img.resize((size, rows), _LANCZOS)))
    coeffs = np.concatenate(coeffs)  # C[x, xx]
    return bool(np.array_equal(coeffs, coeffs[::-1, ::-1]))


def phash_pair(gray, hash_size=8, flip=True):
    """``imagehash.phash(gray).hash`` and, with ``flip``, the phash bits of
    ``gray`` mirrored left-right.

    Args:
        gray (PIL.Image.Image): Mode 'L'.
        hash_size (int): imagehash ``hash_size``. Defaults to 8.
        flip (bool): Also hash the mirror image. Defaults to True.

    Returns:
        tuple[np.ndarray, np.ndarray | None]: ``(hash_size, hash_size)``
        bool arrays.
    """
    size = hash_size * 4
    small = gray.resize((size, size), _LANCZOS)
    thumbs = [np.asarray(small)]
    if flip:
        # the check costs O(width**2) once per width (0.1 s at 4096);
        # wider images are decode-bound anyway
        if (gray.width <= _MAX_CHECKED_WIDTH
                and resize_commutes_with_mirror(gray.width, size)):
            thumbs.append(thumbs[0][:, ::-1])
        else:
            mirror = gray.transpose(_MIRROR).resize((size, size), _LANCZOS)
            thumbs.append(np.asarray(mirror))
    bits = []
    for pixels in thumbs:  # imagehash.phash from here on
        dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)
        low = dct[:hash_size, :hash_size]
        bits.append(low > np.median(low))
    return bits[0], (bits[1] if flip else None)


def gray_std(gray):
    """``ImageStat.Stat(gray).stddev[0]`` by Pillow's formula, with the
    histogram sums in numpy instead of a 256-step Python loop."""
    hist = np.asarray(gray.histogram()[:256], dtype=np.int64)
    levels = np.arange(256, dtype=np.int64)
    count = int(hist.sum())
    if not count:
        return 0.0
    total = int(hist @ levels)
    total2 = int(hist @ (levels * levels))
    return math.sqrt(max(0.0, (total2 - total**2 / count) / count))
