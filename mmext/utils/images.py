# Copyright (c) mmext contributors. All rights reserved.
"""Thumbnails and ``data:`` URIs for self-contained HTML pages.

The leakage report (:mod:`mmext.dedup.report`) and the generated-reports
page (:mod:`mmext.visualization.report_html`) embed images as base64 JPEG
so one ``.html`` file can be attached to an issue or a supplement. Pillow's
``Image.thumbnail`` on a 16-bit or float image goes through
``convert('RGB')``, which clips at 255 (a 16-bit X-ray turns white);
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

    Args:
        img (PIL.Image.Image): An image of mode 'I', 'F' or 'I;16*'.

    Returns:
        PIL.Image.Image: Mode 'L'.
    """
    arr = np.asarray(img, dtype=np.float64)
    if img.mode.startswith('I;16') or arr.max(initial=0) > 255:
        arr = arr / 257.0
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


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
