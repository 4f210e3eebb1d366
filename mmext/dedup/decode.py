# Copyright (c) mmext contributors. All rights reserved.
"""Decode an image file into the grayscale image that gets hashed.

Two decode modes (``hash_images(..., decode=...)``):

* ``'exact'`` (the default): the full image, ``convert('L')``, as
  imagehash does, so the hashes are imagehash's bit for bit;
* ``'fast'``: a JPEG is decoded by libjpeg in the DCT domain at 1/2, 1/4
  or 1/8 scale and as luma only (Pillow's ``Image.draft``: no colour
  conversion, a fraction of the inverse DCTs), at the smallest scale
  whose short side is still at least ``min_side`` pixels, so the LANCZOS
  resize to the hash thumbnail still filters. The hashes differ from
  imagehash's by a few bits (measured in :mod:`mmext.dedup.search`'s
  docstring and by ``benchmarks/dedup_hashing.py --recall``); other
  formats have no DCT to scale and are decoded exactly.

imagehash always decodes the full image; what this module adds besides the
fast mode: images above ``MMEXT_MAX_IMAGE_PIXELS`` are refused from the
header before decoding, 16-bit images are scaled to 8 bits in strips
(Pillow's ``convert('L')`` clips them at 255), and every decode failure
becomes a :class:`SkipImage` with the reason.
"""
import contextlib
import os
import stat
import warnings

from PIL import Image, JpegImagePlugin

from mmext.utils.fileio import InputFileError, open_regular_file
from mmext.utils.images import is_high_bit_depth, to_8bit
from .inputs import file_kind

__all__ = [
    'DECODE_MODES', 'FAST_OVERSAMPLE', 'SkipImage', 'MAX_IMAGE_PIXELS_ENV',
    'DEFAULT_MAX_IMAGE_PIXELS', 'max_image_pixels', 'load_image',
    'draft_scale', 'fast_min_side'
]

#: ``'exact'``: imagehash-identical; ``'fast'``: JPEGs decoded downscaled
#: in the DCT domain, luma only.
DECODE_MODES = ('exact', 'fast')
#: Fast decode keeps the decoded short side at least this many times the
#: phash thumbnail (``4 * hash_size``): 64 pixels for 64-bit hashes, i.e.
#: a 500 x 375 JPEG is decoded at 1/4 scale (125 x 94). Measured with
#: ``benchmarks/dedup_hashing.py --recall`` (see the README).
FAST_OVERSAMPLE = 2
#: DCT-domain scales libjpeg offers through Pillow's ``draft``.
_SCALES = (8, 4, 2)

#: Environment variable with the largest image (width x height) to hash.
MAX_IMAGE_PIXELS_ENV = 'MMEXT_MAX_IMAGE_PIXELS'
#: 100 Mpx (a 10000 x 10000 scan; Flowers-102 and ImageNet photos average
#: well under 1 Mpx): at most ~500 MB to decode and hash.
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000
_TOO_LARGE = 'too large:'  # reason prefix (never cached: limits change)


class SkipImage(Exception):
    """An image that gets no hash; the message is the reason."""


def max_image_pixels():
    """The pixel limit: ``$MMEXT_MAX_IMAGE_PIXELS`` or
    :data:`DEFAULT_MAX_IMAGE_PIXELS`.

    Raises:
        ValueError: The variable is set but not a positive integer.
    """
    value = os.environ.get(MAX_IMAGE_PIXELS_ENV, '').strip()
    try:
        limit = int(float(value)) if value else DEFAULT_MAX_IMAGE_PIXELS
    except (ValueError, OverflowError):
        limit = 0
    if limit <= 0:
        raise ValueError(f'{MAX_IMAGE_PIXELS_ENV}={value!r} is not a positive '
                         'integer number of pixels (e.g. 200000000); unset it '
                         f'for the default {DEFAULT_MAX_IMAGE_PIXELS}')
    return limit


def fast_min_side(hash_size, oversample=None):
    """Smallest short side (pixels) a fast-decoded JPEG keeps:
    ``oversample`` (default :data:`FAST_OVERSAMPLE`) times phash's
    thumbnail side ``4 * hash_size`` (the other methods resize to smaller
    thumbnails)."""
    oversample = FAST_OVERSAMPLE if oversample is None else oversample
    return int(oversample * 4 * hash_size)


def draft_scale(width, height, min_side):
    """The largest DCT scale (8, 4, 2 or 1) at which a ``width`` x
    ``height`` JPEG keeps a short side of at least ``min_side`` pixels."""
    for scale in _SCALES:
        if -(-min(width, height) // scale) >= min_side:
            return scale
    return 1


def _draft(img, min_side):
    """Ask libjpeg for luma only, downscaled in the DCT domain (JPEG only;
    other formats are left as they are)."""
    if not isinstance(img, JpegImagePlugin.JpegImageFile):
        return
    width, height = img.size
    scale = draft_scale(width, height, min_side)
    # Pillow picks the largest scale <= min(w // req_w, h // req_h)
    size = (width // scale, height // scale) if scale > 1 else None
    img.draft('L', size)


@contextlib.contextmanager
def _pillow_checks_at(max_pixels):
    """Pillow warns above ``Image.MAX_IMAGE_PIXELS`` (89 Mpx) and refuses
    above twice that in ``Image.open``; the bound here is checked before
    decoding, so silence the warning and let a raised bound through."""
    saved = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', Image.DecompressionBombWarning)
        if saved is not None and max_pixels > 2 * saved:
            Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def load_image(path, max_pixels=None, min_side=None):
    """Decode ``path`` into the grayscale image imagehash would hash.

    The size is read from the header first (Pillow's ``Image.open`` is
    lazy) and an image of more than ``max_pixels`` is not decoded.

    Args:
        path (str): Image file.
        max_pixels (int, optional): Largest width x height to decode.
            Defaults to None (:func:`max_image_pixels`).
        min_side (int, optional): Fast decode: a JPEG is decoded as luma,
            downscaled in the DCT domain as far as its short side stays at
            least ``min_side`` pixels (:func:`fast_min_side`); other formats
            as usual. Defaults to None (exact: the full image, as imagehash
            decodes it).

    Raises:
        SkipImage: The file cannot be decoded or is too large, with the
            reason.
    """
    if max_pixels is None:
        max_pixels = max_image_pixels()
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):  # opening a FIFO would block
            raise SkipImage(f'not a regular file ({file_kind(st.st_mode)})')
        if st.st_size == 0:
            raise SkipImage('empty file (0 bytes)')
        with open_regular_file(path, 'image') as f, \
                _pillow_checks_at(max_pixels), Image.open(f) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise SkipImage(
                    f'{_TOO_LARGE} {width}x{height} = {width * height} '
                    f'pixels ({img.mode}), more than {max_pixels} '
                    f'({MAX_IMAGE_PIXELS_ENV}); set {MAX_IMAGE_PIXELS_ENV}='
                    f'{width * height} to hash it')
            if min_side is not None:
                _draft(img, min_side)
            img.load()
            if is_high_bit_depth(img):
                return to_8bit(img)  # in strips: no float64 copy
            # imagehash does exactly this first; converting once here and
            # passing 'L' (convert('L') of 'L' is a copy) keeps the hashes
            # identical and saves a conversion for the flipped variant.
            return img if img.mode == 'L' else img.convert('L')
    except SkipImage:
        raise
    except InputFileError as e:  # swapped for a FIFO after the stat
        raise SkipImage(f'not a regular file ({e})')
    except Image.UnidentifiedImageError:
        raise SkipImage('not an image Pillow can identify')
    except Image.DecompressionBombError as e:
        raise SkipImage(f'{_TOO_LARGE} {e} ({MAX_IMAGE_PIXELS_ENV} is '
                        f'{max_pixels})')
    except OSError as e:
        if 'truncated' in str(e):
            raise SkipImage(f'truncated file ({e})')
        raise SkipImage(f'unreadable ({type(e).__name__}: {e})')
    except MemoryError:
        raise SkipImage(f'out of memory decoding it; lower '
                        f'{MAX_IMAGE_PIXELS_ENV} (now {max_pixels})')
    except Exception as e:  # a decoder bug must not stop a 100k-file run
        raise SkipImage(f'decode failed ({type(e).__name__}: {e})')
