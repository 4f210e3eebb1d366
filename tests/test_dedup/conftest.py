# Copyright (c) mmext contributors. All rights reserved.
"""Shared fixtures: real photos and a planted-duplicate folder pair."""
import os

import pytest
from PIL import Image

from mmext.testing import sample_photos

# natural photographs (not charts / textures) used as held-out images
HELDOUT = ('astronaut', 'chelsea', 'coffee', 'camera', 'horse', 'china',
           'flower', 'coins', 'clock', 'rocket')
# other images, written to the training folder as distinct photos
DISTINCT = ('gravel', 'brick', 'grass', 'moon', 'text', 'page',
            'hubble_deep_field', 'immunohistochemistry', 'colorwheel')


@pytest.fixture(scope='session')
def photos():
    # skimage calls pytest.skip() (a BaseException, which sample_photos'
    # `except Exception` does not catch) for a file it would download when
    # it sees PYTEST_CURRENT_TEST; hide it so that file is just left out
    saved = os.environ.pop('PYTEST_CURRENT_TEST', None)
    try:
        found = sample_photos()
    finally:
        if saved is not None:
            os.environ['PYTEST_CURRENT_TEST'] = saved
    missing = [n for n in HELDOUT + DISTINCT if n not in found]
    assert not missing, f'sample_photos() lacks {missing}'
    return found


def center_crop(img, fraction):
    """Remove ``fraction`` of the width and height, half on each side."""
    w, h = img.size
    dx, dy = round(w * fraction / 2), round(h * fraction / 2)
    return img.crop((dx, dy, w - dx, h - dy))


def _resize(img, scale):
    return img.resize((round(img.width * scale), round(img.height * scale)),
                      Image.Resampling.BICUBIC)


# planted copy in the "102" folder -> (held-out source, edit, via flip?)
PLANTED = {
    'image_00001.jpg': ('astronaut', lambda im: im, 70, False),
    'image_00002.jpg': ('chelsea', lambda im: _resize(im, 0.75), 90, False),
    'image_00003.jpg': ('coffee', lambda im: _resize(im, 1.5), 90, False),
    'image_00004.jpg': ('camera', lambda im: center_crop(im, 0.05), 90, False),
    'image_00005.jpg': ('china', lambda im: center_crop(im, 0.04), 70, False),
    'image_00006.jpg':
    ('flower', lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 90,
     True),
    'image_00007.jpg':
    ('horse',
     lambda im: _resize(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 0.5),
     70, True),
}


@pytest.fixture
def planted(tmp_path, photos):
    """``data17/jpg`` held-out photos (PNG) and ``data102/jpg`` with the
    planted copies of :data:`PLANTED` plus distinct photos.

    Returns:
        dict: roots, and ``expected``: {relative 102 path: (17 name,
        flipped)}.
    """
    root17, root102 = tmp_path / 'data17', tmp_path / 'data102'
    (root17 / 'jpg').mkdir(parents=True)
    (root102 / 'jpg').mkdir(parents=True)
    for i, name in enumerate(HELDOUT):
        photos[name].save(root17 / 'jpg' / f'image_{i + 1:04d}.png')
    expected = {}
    for fname, (src, edit, quality, flipped) in PLANTED.items():
        edit(photos[src]).save(root102 / 'jpg' / fname, quality=quality)
        idx = HELDOUT.index(src) + 1
        expected[f'jpg/{fname}'] = (f'image_{idx:04d}.png', flipped)
    for k, name in enumerate(DISTINCT):
        photos[name].save(
            root102 / 'jpg' / f'image_{101 + k:05d}.jpg', quality=90)
    return dict(root17=root17, root102=root102, expected=expected)
