# Copyright (c) mmext contributors. All rights reserved.
"""Deterministic, learnable image data generated on the fly.

No data set can be downloaded here, so the tests and the demo write small data
sets in the exact layouts the real loaders read.
"""
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ['make_image_folder', 'sample_photos', 'class_image']


def class_image(label, index, size=64, num_classes=3):
    """An RGB image whose class is visible: a hue per class plus noise.

    Args:
        label (int): Class index.
        index (int): Sample index (seeds the noise and the shape position).
        size (int): Side in pixels.
        num_classes (int): Spreads the class hues around the colour wheel.

    Returns:
        PIL.Image.Image
    """
    rng = np.random.default_rng(label * 100003 + index)
    hue = label / max(num_classes, 1)
    base = np.array(
        [0.5 + 0.5 * np.cos(2 * np.pi * (hue + k / 3)) for k in range(3)])
    img = rng.normal(0.5, 0.15, (size, size, 3)) * 0.5
    y, x = np.mgrid[:size, :size] / size
    cy, cx = rng.uniform(0.3, 0.7, 2)
    blob = np.exp(-((y - cy)**2 + (x - cx)**2) / 0.05)[..., None]
    img = img * (1 - blob) + base * blob
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


def make_image_folder(root,
                      num_classes=3,
                      per_class=8,
                      size=64,
                      splits=('train', 'val')):
    """Write ``root/<split>/class_<k>/<k>_<i>.png`` (mmpretrain's
    ``CustomDataset`` layout). Returns the root as a Path."""
    root = Path(root)
    for s, split in enumerate(splits):
        for label in range(num_classes):
            folder = root / split / f'class_{label}'
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                img = class_image(label, s * 10000 + i, size, num_classes)
                img.save(folder / f'{label}_{i}.png')
    return root


def sample_photos():
    """Real photographs shipped by scikit-image and scikit-learn, as a dict
    of name -> RGB ``PIL.Image`` (used to test perceptual hashing)."""
    photos = {}  # skimage "cat" is "chelsea" again: left out
    try:
        from skimage import data as skdata
        for name in ('astronaut', 'chelsea', 'coffee', 'rocket', 'camera',
                     'immunohistochemistry', 'hubble_deep_field', 'retina',
                     'colorwheel', 'page', 'text', 'moon', 'horse', 'clock',
                     'coins', 'grass', 'gravel', 'brick', 'microaneurysms',
                     'eagle', 'logo'):
            fn = getattr(skdata, name, None)
            if fn is None:
                continue
            try:
                arr = np.asarray(fn())
            except Exception:  # some need pooch downloads: not here
                continue
            except BaseException as e:
                # under pytest, skimage raises pytest's Skipped (a
                # BaseException) for those instead
                if type(e).__name__ != 'Skipped':
                    raise
                continue
            photos[name] = _to_rgb(arr)
    except ImportError:
        pass
    try:
        from sklearn.datasets import load_sample_images
        for name, arr in zip(('china', 'flower'), load_sample_images().images):
            photos[name] = _to_rgb(arr)
    except ImportError:
        pass
    return photos


def _to_rgb(arr):
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype != np.uint8:
        arr = (255 * (arr - arr.min()) / max(np.ptp(arr), 1e-8)).astype(
            np.uint8)
    img = Image.fromarray(arr)
    return img.convert('RGB')
