# Copyright (c) mmext contributors. All rights reserved.
"""The leakage check's folder listing (symlinks as mmpretrain follows them,
loops, image-named non-files) and the pixel bound before decoding."""
import csv
import os
import socket
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from mmext.dedup import find_leakage, hash_images, load_image
from mmext.dedup.hashing import MAX_IMAGE_PIXELS_ENV, max_image_pixels
from mmext.dedup.inputs import list_image_files, scan_image_folder
from mmext.dedup.textio import unescape_path

pytestmark = pytest.mark.skipif(
    os.name != 'posix', reason='symlinks, FIFOs and sockets')

# distinct photographs of the ``photos`` fixture (tests/test_dedup/conftest)
PHOTOS = ('astronaut', 'chelsea', 'coffee', 'camera', 'horse', 'china',
          'flower', 'coins', 'clock', 'rocket', 'moon', 'brick')


def _skipped_csv(out_dir):
    with open(out_dir / 'skipped.csv', newline='', encoding='utf-8') as f:
        return {
            unescape_path(r['path']): (r['set'], r['reason'])
            for r in csv.DictReader(f)
        }


def _check(train, held, out_dir):
    """The leakage check in this process, no cache."""
    return find_leakage(
        str(train),
        str(held),
        str(out_dir),
        workers=0,
        use_cache=False,
        progress=False)


def _texture(seed, size=64):
    rng = np.random.RandomState(seed)
    small = rng.randint(0, 256, (8, 8, 3)).astype(np.uint8)
    return Image.fromarray(small).resize((size, size),
                                         Image.Resampling.BICUBIC)


def test_symlinked_class_folder_found_like_custom_dataset(tmp_path, photos):
    """11 held-out photos copied into a class-folder training set, 10 of
    them in a class folder that is a symlink: all 11 pairs are found, and
    the listing is exactly the images mmpretrain's CustomDataset trains
    on (before: 1 of 11, the symlinked folder was not entered)."""
    from mmpretrain.datasets import CustomDataset
    names = PHOTOS[:11]
    held, train, elsewhere = (
        tmp_path / n for n in ('held', 'train', 'elsewhere'))
    for folder in (held, train / 'class_a', elsewhere / 'b'):
        folder.mkdir(parents=True)
    for i, name in enumerate(names):
        photos[name].save(held / f'h{i:02d}.png')
        dest = train / 'class_a' if i == 0 else elsewhere / 'b'
        photos[name].save(dest / f'copy{i:02d}.png')
    photos[PHOTOS[11]].save(train / 'class_a' / 'other.jpg')
    (train / 'class_b').symlink_to(elsewhere / 'b', target_is_directory=True)

    listed = list_image_files(str(train))
    ds = CustomDataset(data_root=str(train), with_label=True)
    trained = [ds.get_data_info(i)['img_path'] for i in range(len(ds))]
    assert sorted(listed) == sorted(trained) and len(listed) == 12

    meta = _check(train, held, tmp_path / 'out')
    assert meta['pairs'] == 11 and meta['skipped'] == 0


def test_symlink_loop_listed_once(tmp_path):
    root = tmp_path / 'train'
    (root / 'a' / 'b').mkdir(parents=True)
    (root / 'c').mkdir()
    _texture(0).save(root / 'a' / 'b' / 'x.png')
    _texture(1).save(root / 'c' / 'y.png')
    (root / 'a' / 'b' / 'up').symlink_to('../..')  # -> train: a loop
    (root / 'a' / 'to_c').symlink_to('../c')  # a sibling: followed
    (root / 'c' / 'to_a').symlink_to('../a')  # a -> c -> a: a loop
    (root / 'a' / 'self.jpg').symlink_to('self.jpg')  # ELOOP file
    listing = scan_image_folder(str(root))
    rel = sorted(os.path.relpath(p, root) for p in listing.paths)
    # each folder once per path without repeating a folder (as mmpretrain,
    # which would never stop on these links)
    assert rel == ['a/b/x.png', 'a/to_c/y.png', 'c/to_a/b/x.png', 'c/y.png']
    reasons = {os.path.relpath(p, root): r for p, r in listing.skipped}
    loops = [p for p, r in reasons.items() if r.startswith('symlink loop')]
    # every walked path that leads back is listed once, nothing else
    assert sorted(loops) == sorted(reasons) == [
        'a/b/up', 'a/self.jpg', 'a/to_c/to_a', 'c/to_a/b/up',
        'c/to_a/self.jpg', 'c/to_a/to_c'
    ]


def test_image_named_non_files_in_skipped_csv(tmp_path, monkeypatch):
    """A directory named x.jpg, a FIFO, a socket, a broken symlink and a
    hidden file are each listed with the reason; the images inside the
    x.jpg directory are used."""
    train, held = tmp_path / 'train', tmp_path / 'held'
    (train / 'x.jpg').mkdir(parents=True)
    held.mkdir()
    _texture(3).save(train / 'x.jpg' / 'inside.png')
    _texture(3).save(held / 'same.png')
    _texture(4).save(train / '.hidden.png')
    os.mkfifo(train / 'pipe.jpg')
    (train / 'gone.jpg').symlink_to(tmp_path / 'nowhere.jpg')
    (train / 'notes.txt').write_text('not an image: not listed')
    monkeypatch.chdir(train)  # AF_UNIX paths are short
    sock = socket.socket(socket.AF_UNIX)
    sock.bind('sock.png')
    try:
        meta = _check(train, held, tmp_path / 'out')
    finally:
        sock.close()
    assert meta['pairs'] == 1 and meta['train_hashed'] == 1
    skipped = _skipped_csv(tmp_path / 'out')
    want = {
        'x.jpg': 'a directory, not an image',
        'pipe.jpg': 'not a regular file (a FIFO)',
        'sock.png': 'not a regular file (a socket)',
        'gone.jpg': 'broken symlink',
        '.hidden.png': 'hidden file',
    }
    assert sorted(skipped) == sorted(str(train / n) for n in want)
    for name, reason in want.items():
        assert skipped[str(train / name)][0] == 'train'
        assert skipped[str(train / name)][1].startswith(reason)
    assert meta['skipped'] == len(want)


def test_unreadable_folder_listed(tmp_path):
    if os.geteuid() == 0:
        pytest.skip('root reads any folder')
    (tmp_path / 'locked').mkdir()
    _texture(0).save(tmp_path / 'ok.png')
    os.chmod(tmp_path / 'locked', 0)
    try:
        listing = scan_image_folder(str(tmp_path))
    finally:
        os.chmod(tmp_path / 'locked', 0o755)
    assert listing.paths == [str(tmp_path / 'ok.png')]
    assert listing.skipped[0][1].startswith('folder not readable')


def test_pixel_bound_before_decode(tmp_path, monkeypatch):
    small = np.asarray(_texture(5, 30).convert('L'), np.uint16) * 257
    big = np.asarray(_texture(6, 40).convert('L'), np.uint16) * 257
    Image.fromarray(small).save(tmp_path / 'small16.png')
    Image.fromarray(big).save(tmp_path / 'big16.png')
    paths = [str(tmp_path / 'small16.png'), str(tmp_path / 'big16.png')]
    decoded = []
    real_load = Image.Image.load

    def spy(img):
        decoded.append(img.size)
        return real_load(img)

    monkeypatch.setattr(Image.Image, 'load', spy)
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, '1000')
    cache = str(tmp_path / 'cache.sqlite')
    res = hash_images(paths, workers=0, progress=False, cache_file=cache)
    assert res.paths == paths[:1]
    [(path, reason)] = res.skipped
    assert path == paths[1] and reason.startswith(
        'too large: 40x40 = 1600 pixels (I;16), more than 1000')
    assert f'{MAX_IMAGE_PIXELS_ENV}=1600' in reason  # the fix
    assert (40, 40) not in decoded  # refused from the header
    # the refusal is not cached: a raised limit hashes the image
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, '1600')
    again = hash_images(paths, workers=0, progress=False, cache_file=cache)
    assert again.paths == paths and again.num_cached == 1
    # above Pillow's own refusal (2 x 89 Mpx) the bound decides
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 500)
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, '2000')
    assert hash_images(paths, workers=0, progress=False).paths == paths
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, '1000')
    assert 'too large' in hash_images(
        paths, workers=0, progress=False).skipped[0][1]
    assert Image.MAX_IMAGE_PIXELS == 500  # restored
    for bad in ('abc', '0', '-5'):
        monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, bad)
        with pytest.raises(ValueError, match=MAX_IMAGE_PIXELS_ENV):
            max_image_pixels()
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, '2e8')
    assert max_image_pixels() == 200_000_000


def test_16bit_decode_memory_is_bounded(tmp_path):
    """numpy's share of decoding a 16-bit PNG is the 8-bit result plus a
    strip of a few MB (the float64 copies of the whole image were ~34
    bytes per pixel: 76 MB here)."""
    side = 1500
    arr = (np.arange(side * side, dtype=np.uint32) * 37 % 65536).astype(
        np.uint16).reshape(side, side)
    Image.fromarray(arr).save(tmp_path / 'g16.png', compress_level=1)
    tracemalloc.start()
    try:
        gray = load_image(str(tmp_path / 'g16.png'))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert gray.mode == 'L' and gray.size == (side, side)
    assert peak < side * side + 16e6, peak
    want = np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(gray), want)
