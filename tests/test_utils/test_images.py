# Copyright (c) mmext contributors. All rights reserved.
"""mmext.utils.images: thumbnails of 8- and 16-bit files, grey tiles for
unreadable files, JPEG data URIs."""
import base64
import io

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

from mmext.utils.images import image_data_uri, thumbnail, to_8bit


def _gradient16(path, w=300, h=100):
    ramp = np.tile(np.linspace(0, 65535, w), (h, 1)).astype(np.uint16)
    Image.fromarray(ramp).save(path)  # a 16-bit PNG ('I;16' / 'I')
    return ramp


def test_to_8bit_scales_the_full_16_bit_range():
    img = Image.fromarray(np.array([[0, 257, 32896, 65535]], np.uint16))
    assert np.asarray(to_8bit(img)).tolist() == [[0, 1, 128, 255]]
    small = Image.fromarray(np.array([[0, 100, 255]], np.int32), 'I')
    assert np.asarray(to_8bit(small)).tolist() == [[0, 100, 255]]


def test_thumbnail_of_16_bit_file_is_not_clipped(tmp_path):
    path = tmp_path / 'xray16.png'
    _gradient16(path)
    naive = np.asarray(Image.open(path).convert('RGB'), np.float64)
    assert naive.mean() > 250  # what Pillow alone shows: almost white
    thumb = thumbnail(path, 64)
    assert thumb.mode == 'RGB' and thumb.size == (64, 21)
    arr = np.asarray(thumb, np.float64)
    assert 120 < arr.mean() < 135  # the ramp's mid grey
    assert arr[:, 0].mean() < 10 and arr[:, -1].mean() > 245


def test_unreadable_file_raises_or_gives_a_tile(tmp_path):
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'not an image at all')
    with pytest.raises(UnidentifiedImageError):
        thumbnail(bad, 32)
    tile = thumbnail(bad, 32, fallback_color=(128, 128, 128))
    assert tile.size == (32, 32)
    assert set(tile.getdata()) == {(128, 128, 128)}
    with pytest.raises(FileNotFoundError):
        thumbnail(tmp_path / 'none.png', 32)


def test_data_uri_decodes_to_the_image(tmp_path):
    img = Image.new('RGB', (40, 30), (200, 30, 60))
    uri = image_data_uri(img)
    head, payload = uri.split(',', 1)
    assert head == 'data:image/jpeg;base64'
    back = Image.open(io.BytesIO(base64.b64decode(payload)))
    assert back.format == 'JPEG' and back.size == (40, 30)
    assert np.abs(np.asarray(back, np.int64) - [200, 30, 60]).max() < 8
