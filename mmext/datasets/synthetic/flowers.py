# Copyright (c) mmext contributors. All rights reserved.
"""Oxford Flowers-17 / Flowers-102 look-alikes in the exact on-disk layouts.

The real archives cannot be downloaded here, so the demo (``make demo``,
:mod:`mmext.apis.flowers_demo`), smoke runs, tests and benchmarks write small
deterministic stand-ins that the real loaders read unchanged: the same file
names, the same ``.mat`` keys, 1-based indices stored as ``1 x N`` double
rows, class-order labels for Flowers-17 and shuffled labels for Flowers-102.
(Formerly ``mmext.testing.flowers``, which re-exports these names.)

Images are synthetic "flowers": a class-coloured rosette whose petal count
also depends on the class, drawn at a random place over a smooth random
background. The class is easy to learn at 64 px; the random low-frequency
background makes the perceptual hashes of distinct images far apart (a plain
hue blob would give many near-identical pHashes), so planted near-duplicates
are the only close pairs.
"""
import io
from collections import namedtuple
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image, ImageOps

__all__ = [
    'flower_image', 'make_flowers17', 'make_flowers102', 'PlantedDuplicate',
    'FLOWERS17_SPLIT_KEYS', 'MAT_FLAVOURS', 'PLANT_EDITS'
]

FLOWERS17_SPLIT_KEYS = tuple(f'{s}{i}' for s in ('trn', 'val', 'tst')
                             for i in (1, 2, 3))
#: ``.mat`` writers: uncompressed MAT v5 (``scipy.io.savemat`` default),
#: zlib-compressed MAT v5 (what MATLAB >= 7 writes by default) and MAT v4.
MAT_FLAVOURS = ('v5', 'v5-compressed', 'v4')

#: One planted near-duplicate: ``path`` (the edited copy inside the
#: Flowers-102 folder), ``source`` (the Flowers-17 image it was made from),
#: ``edit`` (``'reencode'``, ``'resize'``, ``'flip'`` or ``'crop'``), all
#: paths absolute.
PlantedDuplicate = namedtuple('PlantedDuplicate', ['path', 'source', 'edit'])

_EDITS = ('reencode', 'resize', 'flip')
#: What ``make_flowers102`` can plant: :data:`_EDITS` (found by perceptual
#: hashes) and ``'crop'`` (70 % of the area, off-centre, enlarged back to
#: the original size: only ``find_leakage --stage geometric`` finds it).
PLANT_EDITS = _EDITS + ('crop', )


def _smooth_field(rng, size, cells=8):
    """A smooth random field in [0, 1]: bicubic upsampling of a coarse grid
    (puts energy in the low DCT frequencies pHash looks at)."""
    coarse = (rng.uniform(0, 255, (cells, cells))).astype(np.uint8)
    img = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
    return np.asarray(img, dtype=np.float64) / 255


def flower_image(label, index, size=64, num_classes=17, seed=0):
    """Draw one deterministic synthetic flower.

    Args:
        label (int): Class index (0-based); sets the petal hue, the petal
            count and the centre colour.
        index (int): Sample index; seeds position, size, rotation and
            background.
        size (int): Side in pixels. Defaults to 64.
        num_classes (int): Spreads the class hues over the colour wheel.
            Defaults to 17.
        seed (int): Data-set seed, so two data sets never share an image.
            Defaults to 0.

    Returns:
        PIL.Image.Image: An RGB image of ``size x size``.

    Example:
        >>> flower_image(3, 0, size=32).size
        (32, 32)
    """
    rng = np.random.default_rng([seed, label, index])
    hue = (label * 7 % num_classes) / num_classes  # neighbours far apart
    petal_rgb = np.array(
        [0.5 + 0.5 * np.cos(2 * np.pi * (hue + k / 3)) for k in range(3)])
    centre_rgb = np.array([0.95, 0.8, 0.1]) if label % 2 else np.array(
        [0.25, 0.1, 0.05])
    petals = 4 + label % 5

    field = _smooth_field(rng, size)
    tint = rng.uniform(0.2, 0.6, 3) * np.array([0.8, 1.0, 0.7])
    img = field[..., None] * tint + 0.1 * rng.uniform(0, 1, 3)

    y, x = np.mgrid[:size, :size] / size
    cy, cx = rng.uniform(0.35, 0.65, 2)
    radius = rng.uniform(0.22, 0.32)
    rot = rng.uniform(0, 2 * np.pi)
    rho = np.hypot(y - cy, x - cx)
    theta = np.arctan2(y - cy, x - cx)
    edge = radius * (0.45 + 0.55 * np.abs(np.cos(petals * (theta + rot) / 2)))
    petal = (rho < edge)[..., None]
    centre = (rho < 0.22 * radius)[..., None]
    img = np.where(petal, petal_rgb * rng.uniform(0.75, 1.0), img)
    img = np.where(centre, centre_rgb, img)
    img = img + rng.normal(0, 0.03, img.shape)
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


def _save_mat(path, arrays, mat_flavour):
    if mat_flavour not in MAT_FLAVOURS:
        raise ValueError(f'mat_flavour must be one of {MAT_FLAVOURS}, '
                         f'got {mat_flavour!r}')
    # The real files hold 1 x N rows of 1-based integer indices / labels.
    # MATLAB stores integer-valued doubles as uint16 elements, which mat4py
    # (mmpretrain's Flowers102 reader) returns as ints; scipy can only write
    # the class itself as uint16, which both readers return as ints too.
    # MAT v4 has doubles only.
    dtype = np.float64 if mat_flavour == 'v4' else np.uint16
    rows = {k: np.asarray(v, dtype=dtype)[None, :] for k, v in arrays.items()}
    if mat_flavour == 'v4':
        scipy.io.savemat(path, rows, format='4')
    else:
        scipy.io.savemat(
            path,
            rows,
            format='5',
            do_compression=mat_flavour == 'v5-compressed')


def _split_sizes(per_class, fractions):
    if per_class < len(fractions):
        raise ValueError(f'per_class must be >= {len(fractions)} so every '
                         f'split gets an image, got {per_class}')
    sizes = [max(1, int(per_class * f)) for f in fractions[:-1]]
    sizes.append(per_class - sum(sizes))
    return sizes


def make_flowers17(root,
                   per_class=8,
                   size=64,
                   mat_flavour='v5',
                   seed=0,
                   quality=90):
    """Write a Flowers-17 look-alike: ``jpg/image_%04d.jpg`` and
    ``datasplits.mat``.

    Images are in class order like the real set (label = (index - 1) //
    per_class; the real set has ``per_class=80``). ``datasplits.mat`` holds
    ``trn1..3``, ``val1..3``, ``tst1..3`` with the real 2:1:1 proportions per
    class (40/20/20 of 80), each split id using its own permutation.

    Args:
        root (str | Path): Output folder (created).
        per_class (int): Images per class, >= 3. Defaults to 8.
        size (int): Image side in pixels. Defaults to 64.
        mat_flavour (str): One of :data:`MAT_FLAVOURS`. Defaults to 'v5'.
        seed (int): Image seed. Defaults to 0.
        quality (int): JPEG quality. Defaults to 90.

    Returns:
        Path: ``root``.

    Example:
        >>> root = make_flowers17('work_dirs/ex_f17', per_class=4, size=32)
        >>> len(list((root / 'jpg').glob('image_*.jpg')))
        68
    """
    root = Path(root)
    (root / 'jpg').mkdir(parents=True, exist_ok=True)
    num_classes = 17
    for label in range(num_classes):
        for i in range(per_class):
            idx = label * per_class + i + 1
            flower_image(label, i, size, num_classes, seed).save(
                root / 'jpg' / f'image_{idx:04d}.jpg', quality=quality)
    sizes = _split_sizes(per_class, (0.5, 0.25, 0.25))
    splits = {}
    for split_id in (1, 2, 3):
        rng = np.random.default_rng([seed, split_id])
        parts = ([], [], [])
        for label in range(num_classes):
            ids = label * per_class + 1 + rng.permutation(per_class)
            bounds = np.cumsum([0] + sizes)
            for p in range(3):
                parts[p].extend(sorted(ids[bounds[p]:bounds[p + 1]]))
        for name, part in zip(('trn', 'val', 'tst'), parts):
            splits[f'{name}{split_id}'] = part
    _save_mat(root / 'datasplits.mat', splits, mat_flavour)
    return root


def _plant(img, edit, size):
    """Return the edited copy of ``img`` that stands for a leaked image."""
    if edit == 'flip':
        return ImageOps.mirror(img)
    if edit == 'resize':
        return img.resize((int(size * 1.25), ) * 2, Image.LANCZOS)
    if edit == 'crop':  # 70 % of the area, towards the top left
        side = round(size * 0.7**0.5)
        off = (size - side) // 3
        return img.crop((off, off, off + side, off + side)).resize(
            (size, size), Image.BICUBIC)
    if edit != 'reencode':
        raise ValueError(f'unknown edit {edit!r}; choose from {PLANT_EDITS}')
    # 'reencode': a lossy JPEG round trip at a lower quality
    buf = io.BytesIO()
    img.save(buf, format='JPEG', quality=60)
    return Image.open(io.BytesIO(buf.getvalue())).convert('RGB')


def make_flowers102(root,
                    per_class=4,
                    size=64,
                    duplicates_of=(),
                    edits=_EDITS,
                    mat_flavour='v5',
                    seed=1,
                    quality=90):
    """Write a Flowers-102 look-alike: ``jpg/image_%05d.jpg``,
    ``imagelabels.mat`` (``labels``, 1-based) and ``setid.mat`` (``trnid``,
    ``valid``, ``tstid``, 1-based image ids).

    Labels are shuffled over the image ids as in the real set. Optionally
    plants near-duplicates: each image in ``duplicates_of`` (e.g. Flowers-17
    test images) replaces one training image of the 102 set after an edit
    (cycling through ``edits``), the way a scraped data set leaks another's
    test images.

    Args:
        root (str | Path): Output folder (created).
        per_class (int): Images per class, >= 3 (1/4 train, 1/4 val, the rest
            test). Defaults to 4.
        size (int): Image side in pixels. Defaults to 64.
        duplicates_of (Sequence[str | Path]): Images to plant as edited
            copies into the training split. Defaults to none.
        edits (Sequence[str]): Edits to cycle through, from ``'reencode'``
            (JPEG quality 60), ``'resize'`` (x1.25), ``'flip'``
            (horizontal mirror) and ``'crop'`` (70 % of the area, resized
            back; :data:`PLANT_EDITS`).
        mat_flavour (str): One of :data:`MAT_FLAVOURS`. Defaults to 'v5'.
        seed (int): Image seed (differs from :func:`make_flowers17`'s default
            so the two sets share no image). Defaults to 1.
        quality (int): JPEG quality. Defaults to 90.

    Returns:
        list[PlantedDuplicate]: The planted pairs, in ``duplicates_of`` order.

    Example:
        >>> f17 = make_flowers17('work_dirs/ex_f17', per_class=4, size=32)
        >>> planted = make_flowers102(
        ...     'work_dirs/ex_f102', per_class=3, size=32,
        ...     duplicates_of=[f17 / 'jpg/image_0004.jpg'])
        >>> planted[0].edit
        'reencode'
    """
    root = Path(root)
    (root / 'jpg').mkdir(parents=True, exist_ok=True)
    num_classes = 102
    sizes = _split_sizes(per_class, (0.25, 0.25, 0.5))
    total = num_classes * per_class
    rng = np.random.default_rng(seed)
    order = rng.permutation(total)  # image id - 1 of each (label, i) slot
    labels = np.empty(total, dtype=np.int64)
    split_ids = ([], [], [])
    bounds = np.cumsum([0] + sizes)
    for label in range(num_classes):
        for i in range(per_class):
            img_id = int(order[label * per_class + i]) + 1
            labels[img_id - 1] = label + 1
            part = int(np.searchsorted(bounds, i, side='right')) - 1
            split_ids[part].append(img_id)
            flower_image(label, i, size, num_classes, seed).save(
                root / 'jpg' / f'image_{img_id:05d}.jpg', quality=quality)
    _save_mat(root / 'imagelabels.mat', {'labels': labels}, mat_flavour)
    _save_mat(
        root / 'setid.mat', {
            'trnid': sorted(split_ids[0]),
            'valid': sorted(split_ids[1]),
            'tstid': sorted(split_ids[2])
        }, mat_flavour)

    trnid = sorted(split_ids[0])
    if len(duplicates_of) > len(trnid):
        raise ValueError(f'cannot plant {len(duplicates_of)} duplicates into '
                         f'{len(trnid)} training images; raise per_class')
    # spread the victims over the training split (and so over classes)
    victims = np.linspace(0, len(trnid) - 1, len(duplicates_of) or 1)
    planted = []
    for k, source in enumerate(duplicates_of):
        edit = edits[k % len(edits)]
        target = root / 'jpg' / f'image_{trnid[int(victims[k])]:05d}.jpg'
        with Image.open(source) as img:
            copy = _plant(img.convert('RGB'), edit, img.width)
        copy.save(target, quality=quality)
        planted.append(
            PlantedDuplicate(
                str(target.resolve()), str(Path(source).resolve()), edit))
    return planted
