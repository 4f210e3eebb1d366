# Copyright (c) mmext contributors. All rights reserved.
"""Thumbnails and ``data:`` URIs for self-contained HTML pages.

The leakage report (:mod:`mmext.dedup.leakage_report`) and the
generated-reports page (:mod:`mmext.visualization.report_html`) embed
images as base64 JPEG so one ``.html`` file can be attached to an issue or
a supplement. Pillow's ``Image.thumbnail`` on a 16-bit or float image goes
through ``convert('RGB')``, which clips at 255 (a 16-bit X-ray turns white);
:func:`to_8bit` scales such images first. The hasher
(:mod:`mmext.dedup.hashing`) uses the same scaling.
"""
import base64
import io

import numpy as np
from PIL import Image

__all__ = ['to_8bit', 'thumbnail', 'image_data_uri', 'is_high_bit_depth']


def is_high_bit_depth(img):
    """Whether ``img`` is a 16-bit / 32-bit integer or float image."""
    return img.mode in ('I', 'F') or img.mode.startswith('I;16')


def to_8bit(img):
    """16-bit / 32-bit / float images scaled to 8-bit grayscale ('L').

    Pillow's ``convert('L')`` clips these modes at 255 (a 16-bit photo turns
    almost white); 0..65535 is mapped to 0..255 like an 8-bit export would.
    Converted in strips of rows, so the cost beyond the decoded image is
    its 8-bit copy (a float64 copy of a 13000 x 13000 image is 1.35 GB).

    Args:
        img (PIL.Image.Image): An image of mode 'I', 'F' or 'I;16*'.

    Returns:
        PIL.Image.Image: Mode 'L'.
    """
    width, height = img.size
    step = max(1, (1 << 19) // max(width, 1))  # ~4 MB of float64 a strip
    strips = [(y, min(y + step, height)) for y in range(0, height, step)]

    def rows(y0, y1):
        return np.asarray(img.crop((0, y0, width, y1)), dtype=np.float64)

    # the whole image's max, NaN propagating as in one np.max
    scale = img.mode.startswith('I;16') or np.max(
        [rows(*s).max(initial=0) for s in strips], initial=0) > 255
    out = np.empty((height, width), np.uint8)
    for y0, y1 in strips:
        arr = rows(y0, y1)
        if scale:
            arr /= 257.0
        out[y0:y1] = np.clip(np.rint(arr, out=arr), 0, 255, out=arr)
    return Image.fromarray(out)


def thumbnail(path, size, fallback_color=None):
    """An RGB thumbnail of an image file, at most ``size`` px a side.

    Args:
        path (str | os.PathLike): Image file.
        size (int): Longest side of the thumbnail (aspect ratio kept).
        fallback_color (tuple[int, int, int], optional): Return a
            ``size`` x ``size`` tile of this colour when the file cannot be
            read or decoded, instead of raising. Defaults to None (raise).

    Returns:
        PIL.Image.Image: Mode 'RGB'.
    """
    try:
        with Image.open(path) as img:
            img.load()
            if is_high_bit_depth(img):
                img = to_8bit(img)
            img = img.convert('RGB')
            img.thumbnail((size, size))
            return img
    except Exception:
        if fallback_color is None:
            raise
        return Image.new('RGB', (size, size), tuple(fallback_color))


def image_data_uri(img, quality=85):
    """A ``data:image/jpeg;base64,...`` URI of a PIL image (JPEG).

    Args:
        img (PIL.Image.Image): An 'RGB' or 'L' image.
        quality (int): JPEG quality. Defaults to 85.

    Returns:
        str: The URI, for an ``<img src=...>``.
    """
    buf = io.BytesIO()
    img.save(buf, 'JPEG', quality=quality)
    return 'data:image/jpeg;base64,' + base64.b64encode(
        buf.getvalue()).decode('ascii')
