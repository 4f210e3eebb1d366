# Copyright (c) mmext contributors. All rights reserved.
"""Perceptual hashes of image files, bit-identical to imagehash 4.3.2.

The per-image maths is imagehash's own (``dhash``, ``average_hash``,
``whash`` are called, not re-implemented: a re-written DCT or LANCZOS resize
is not bit-identical; ``phash`` is imagehash's sequence of Pillow / scipy
calls, with the mirror image's thumbnail taken from the same resize where
that is provably bit-exact, :mod:`mmext.dedup.phash_pair`). What imagehash
lacks and this module adds:

* the horizontally flipped image is hashed too (imagehash's hashes of a
  mirrored copy are ~32 bits apart, i.e. never matched);
* 16-bit and float images are scaled to 8 bits first (Pillow's
  ``convert('L')`` clips them at 255, so imagehash hashes a white image);
* near-constant images get no hash: every flat image hashes to the same
  value (``0000…`` / ``8000…``) and would match every other flat image;
* files that cannot be decoded (0-byte, truncated, not an image) are
  reported with the reason instead of raising;
* images above ``MMEXT_MAX_IMAGE_PIXELS`` (from the header) are reported,
  not decoded, and 16-bit images are scaled in strips: ~3 bytes per pixel
  (Pillow only warns up to 179 Mpx; a float64 copy of a 13000 x 13000
  16-bit PNG took 4 GB) (decoding: :mod:`mmext.dedup.decode`);
* an optional fast decode (``decode='fast'``): JPEGs decoded downscaled in
  the DCT domain, luma only; a few bits off imagehash's hashes, several
  times faster (:mod:`mmext.dedup.decode`);
* many files are hashed in parallel processes, with a progress bar and a
  cache keyed by path + size + mtime (+ method, hash size, decode mode,
  versions).

Hashes are packed row-major, most significant bit first, into ``uint64``
words (zero bits padded at the front), so ``hash_to_hex``
(:mod:`mmext.dedup.hexcodec`) gives exactly ``str(imagehash.phash(img))``.
"""
import multiprocessing as mp
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import imagehash
import numpy as np
import PIL
from PIL import Image

from mmext.utils.images import is_high_bit_depth, to_8bit
from .cache import HashCache
from .decode import (_TOO_LARGE, DECODE_MODES, DEFAULT_MAX_IMAGE_PIXELS,
                     MAX_IMAGE_PIXELS_ENV, SkipImage, fast_min_side,
                     load_image, max_image_pixels)
from .hexcodec import hash_to_hex
from .phash_pair import gray_std, phash_pair

__all__ = [
    'METHODS', 'HashResult', 'hash_images', 'hash_pil_image', 'pack_bits',
    'load_image', 'SkipImage', 'MIN_STD', 'MAX_IMAGE_PIXELS_ENV',
    'DEFAULT_MAX_IMAGE_PIXELS', 'max_image_pixels', 'DECODE_MODES'
]

#: method name -> imagehash function (``ahash`` is imagehash's
#: ``average_hash``).
_FUNCS = {
    'phash': imagehash.phash,
    'dhash': imagehash.dhash,
    'ahash': imagehash.average_hash,
    'whash': imagehash.whash,
}
METHODS = tuple(_FUNCS)

#: Grayscale standard deviation (0..255 scale) below which an image counts
#: as near-constant. A JPEG of a flat colour has std < 1; the least
#: textured image in ``mmext.testing.sample_photos()`` ('microaneurysms', a
#: dim retina close-up) has std 9.9.
MIN_STD = 2.0

# What a cached hash depends on besides the file itself.
_VERSIONS = (f'imagehash={imagehash.__version__};pillow={PIL.__version__};'
             f'min_std={MIN_STD}')


@dataclass
class HashResult:
    """Hashes of a list of image files.

    Attributes:
        paths (list[str]): Hashed files, in input order.
        hashes (np.ndarray): ``(N, W)`` uint64, the packed hash of each path.
        flipped (np.ndarray | None): ``(N, W)`` uint64, hashes of the
            horizontally flipped images; None when hashed with
            ``flip=False``.
        skipped (list[tuple[str, str]]): ``(path, reason)`` of every input
            without a hash. ``len(paths) + len(skipped)`` is the number of
            inputs.
        method (str): Hash method.
        hash_size (int): imagehash ``hash_size``.
        num_bits (int): Bits per hash.
        num_cached (int): Inputs answered from the cache.
        decode (str): 'exact' (imagehash-identical) or 'fast' (JPEGs
            decoded downscaled, :mod:`mmext.dedup.decode`).
    """
    paths: List[str]
    hashes: np.ndarray
    flipped: Optional[np.ndarray]
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    method: str = 'phash'
    hash_size: int = 8
    num_bits: int = 64
    num_cached: int = 0
    decode: str = 'exact'

    def __len__(self):
        return len(self.paths)

    def hex(self, index, flipped=False):
        """The imagehash hex string of one hash (``str(ImageHash)``)."""
        words = (self.flipped if flipped else self.hashes)[index]
        return hash_to_hex(words, self.num_bits)


def num_bits_of(method, hash_size):
    """Bits in a hash (every imagehash method here is ``hash_size**2``)."""
    _check_method(method, hash_size)
    return hash_size * hash_size


def _check_method(method, hash_size):
    if method not in _FUNCS:
        raise ValueError(f'unknown hash method {method!r}; choose one of '
                         f'{", ".join(METHODS)}')
    if int(hash_size) != hash_size or hash_size < 2:
        raise ValueError(f'hash_size must be an integer >= 2, got '
                         f'{hash_size!r}')
    if method == 'whash' and hash_size & (hash_size - 1):
        raise ValueError(f'whash needs a power-of-two hash_size, got '
                         f'{hash_size} (try 8 or 16)')


def pack_bits(bits):
    """Pack a bool array (any shape, row-major) into uint64 words, most
    significant bit first, zero-padded at the front."""
    flat = np.asarray(bits, dtype=bool).ravel()
    num_words = -(-flat.size // 64)
    padded = np.zeros(num_words * 64, dtype=bool)
    padded[num_words * 64 - flat.size:] = flat
    return np.packbits(padded).view('>u8').astype(np.uint64)


def hash_pil_image(img,
                   method='phash',
                   hash_size=8,
                   flip=True,
                   min_std=MIN_STD):
    """Hash one PIL image (and its mirror image).

    Args:
        img (PIL.Image.Image): Any mode; converted as :func:`load_image`
            does for files.
        method (str): 'phash', 'dhash', 'ahash' or 'whash'.
        hash_size (int): imagehash ``hash_size``. Defaults to 8.
        flip (bool): Also hash the horizontally flipped image.
        min_std (float): Skip images whose grayscale std is below this.

    Returns:
        tuple[np.ndarray, np.ndarray | None]: packed hash and flipped hash.

    Raises:
        SkipImage: Near-constant image or degenerate hash.
    """
    _check_method(method, hash_size)
    if is_high_bit_depth(img):
        gray = to_8bit(img)
    else:  # convert('L') of 'L' is a copy: skip it (same pixels)
        gray = img if img.mode == 'L' else img.convert('L')
    std = gray_std(gray)
    if std < min_std:
        raise SkipImage(f'near-constant image (grayscale std {std:.2f} < '
                        f'{min_std}): its hash would match every flat image')
    func = _FUNCS[method]
    try:
        if method == 'phash':  # the mirror's hash from the same resize
            bits, flipped_bits = phash_pair(gray, hash_size, flip)
        else:
            bits = func(gray, hash_size=hash_size).hash
            flipped_bits = None
            if flip:
                mirror = gray.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                flipped_bits = func(mirror, hash_size=hash_size).hash
        flipped = None if flipped_bits is None else pack_bits(flipped_bits)
    except (AssertionError, ValueError) as e:
        # whash asserts hash_size <= the image's power-of-two scale
        raise SkipImage(f'{method} with hash_size {hash_size} cannot hash a '
                        f'{gray.width}x{gray.height} image ({e})')
    # all-equal ahash / whash / phash bits mean a flat thumbnail (dhash is
    # all-zero for any left-to-right darkening gradient: legitimate)
    if method != 'dhash' and (not bits.any() or bits.all()):
        raise SkipImage(f'degenerate {method} (all bits equal): no structure '
                        'to match on')
    return pack_bits(bits), flipped


def _hash_file(task):
    """Worker: ``(path, method, hash_size, flip, min_std, max_pixels,
    min_side)`` -> ``(hash, flipped, reason)``."""
    path, method, hash_size, flip, min_std, max_pixels, min_side = task
    try:
        img = load_image(path, max_pixels, min_side)
        words, flipped = hash_pil_image(img, method, hash_size, flip, min_std)
        return words, flipped, None
    except SkipImage as e:
        return None, None, str(e)


def _file_key(path):
    try:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    except OSError:
        return None


def _map(tasks, workers, progress, desc, func=None):
    """Run ``func`` (default ``_hash_file``) over tasks in order, in
    ``workers`` processes."""
    func = func or _hash_file
    from tqdm import tqdm
    bar = tqdm(
        total=len(tasks),
        desc=desc,
        unit='img',
        disable=not progress,
        dynamic_ncols=True)
    try:
        # a daemonic process (e.g. a DataLoader worker) may not have children
        if (workers <= 1 or len(tasks) < 2 * workers
                or mp.current_process().daemon):
            for task in tasks:
                yield func(task)
                bar.update()
            return
        # fork: workers inherit the imported modules (spawn would re-import
        # torch/mmpretrain through mmext/__init__ in every worker, ~3 s each)
        methods = mp.get_all_start_methods()
        ctx = mp.get_context('fork' if 'fork' in methods else None)
        chunksize = max(1, min(64, len(tasks) // (workers * 8)))
        with ctx.Pool(workers) as pool:
            for out in pool.imap(func, tasks, chunksize=chunksize):
                yield out
                bar.update()
    finally:
        bar.close()


def hash_images(paths: Sequence[str],
                method='phash',
                hash_size=8,
                flip=True,
                workers=2,
                cache_file=None,
                progress=True,
                min_std=MIN_STD,
                max_pixels=None,
                decode='exact') -> HashResult:
    """Hash image files in parallel, with a cache.

    Args:
        paths (Sequence[str]): Image files.
        method (str): 'phash' (default), 'dhash', 'ahash' or 'whash'.
        hash_size (int): imagehash ``hash_size``. Defaults to 8 (64 bits).
        flip (bool): Also hash each horizontally flipped image, so mirrored
            copies match. Defaults to True.
        workers (int): Processes; 0 or 1 hashes in this process.
            Defaults to 2.
        cache_file (str | None): SQLite file; entries are keyed by absolute
            path, size, mtime, method, hash size and library versions, so a
            re-run hashes only new or changed files. Defaults to None.
        progress (bool): Show a tqdm progress bar. Defaults to True.
        min_std (float): Near-constant threshold, see :data:`MIN_STD`.
        max_pixels (int, optional): Images with more pixels are skipped
            undecoded (the reason says how to raise the limit). Defaults
            to None (``$MMEXT_MAX_IMAGE_PIXELS`` or 100 Mpx).
        decode (str): 'exact' (the default): the hashes are imagehash's
            bit for bit. 'fast': JPEGs are decoded at 1/2 - 1/8 scale in
            the DCT domain, luma only (:mod:`mmext.dedup.decode`), several
            times faster, a few bits off the exact hashes (measured in
            :mod:`mmext.dedup.search`); other formats are decoded exactly.
            Cached separately from exact hashes.

    Returns:
        HashResult: hashed paths in input order, their hashes, and the
        skipped paths with reasons.

    Example:
        >>> paths = ['a.jpg', 'b.png', 'empty.jpg']
        >>> res = hash_images(paths, workers=0)  # doctest: +SKIP
        >>> res.hashes.shape, res.skipped  # doctest: +SKIP
        ((2, 1), [('empty.jpg', 'empty file (0 bytes)')])
    """
    num_bits = num_bits_of(method, hash_size)
    if decode not in DECODE_MODES:
        raise ValueError(f'unknown decode mode {decode!r}; choose one of '
                         f'{", ".join(DECODE_MODES)}')
    min_side = fast_min_side(hash_size) if decode == 'fast' else None
    if max_pixels is None:
        max_pixels = max_image_pixels()
    num_words = -(-num_bits // 64)
    paths = [str(p) for p in paths]
    outputs = [None] * len(paths)  # (hash, flipped, reason)
    # fast hashes depend on the scale rule too; exact rows keep their key
    cache = HashCache(
        cache_file,
        method,
        hash_size,
        num_bits,
        _VERSIONS,
        decode=None if min_side is None else
        f'fast,min_side={min_side}') if cache_file else None
    keys = [_file_key(p) for p in paths]
    todo = []
    for i, (path, key) in enumerate(zip(paths, keys)):
        if key is None:
            outputs[i] = (None, None, 'file not found or not accessible')
            continue
        if cache is not None:
            hit = cache.get(osp.abspath(path), *key, need_flip=flip)
            if hit is not None:
                outputs[i] = hit
                continue
        todo.append(i)
    num_cached = sum(o is not None for o in outputs) - sum(k is None
                                                           for k in keys)
    tasks = [(paths[i], method, hash_size, flip, min_std, max_pixels, min_side)
             for i in todo]
    new_rows = []
    for i, out in zip(todo, _map(tasks, workers, progress, method)):
        outputs[i] = out
        # a size refusal depends on the limit, not the file: not cached
        if cache is not None and not (out[2] or '').startswith(_TOO_LARGE):
            new_rows.append((osp.abspath(paths[i]), *keys[i], *out))
            if len(new_rows) >= 1000:  # an interrupted run keeps its work
                cache.put_many(new_rows)
                new_rows = []
    if cache is not None:
        cache.put_many(new_rows)
        cache.close()

    kept = [i for i, o in enumerate(outputs) if o[2] is None]
    empty = np.zeros((0, num_words), dtype=np.uint64)
    hashes = np.stack([outputs[i][0] for i in kept]) if kept else empty
    flipped = None
    if flip:
        flipped = (
            np.stack([outputs[i][1] for i in kept]) if kept else empty.copy())
    skipped = [(paths[i], o[2]) for i, o in enumerate(outputs)
               if o[2] is not None]
    result = HashResult([paths[i] for i in kept], hashes, flipped, skipped,
                        method, hash_size, num_bits, num_cached, decode)
    assert len(result.paths) + len(result.skipped) == len(paths), (
        'hash_images lost inputs: hashed + skipped != inputs')
    return result
