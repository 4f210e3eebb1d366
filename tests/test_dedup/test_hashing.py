# Copyright (c) mmext contributors. All rights reserved.
import os

import imagehash
import numpy as np
import pytest
from PIL import Image

import mmext.dedup.hashing as hashing
from mmext.dedup import SkipImage, hash_images, hash_pil_image
from mmext.testing.data import class_image

REFERENCE = {
    'phash': imagehash.phash,
    'dhash': imagehash.dhash,
    'ahash': imagehash.average_hash,
    'whash': imagehash.whash,
}
FLIP = Image.Transpose.FLIP_LEFT_RIGHT


def generated_images():
    """Synthetic images of odd sizes and several modes."""
    rng = np.random.default_rng(7)
    imgs = {
        f'class{k}': class_image(k, k, size=96, num_classes=5)
        for k in range(3)
    }
    imgs['noise_odd'] = Image.fromarray(
        rng.integers(0, 256, (77, 131, 3), dtype=np.uint8))
    y, x = np.mgrid[:120, :90]
    imgs['rings_L'] = Image.fromarray((127 + 120 * np.sin(
        (x**2 + y**2) / 300.0)).astype(np.uint8))
    imgs['rgba'] = class_image(1, 5, size=80).convert('RGBA')
    imgs['palette'] = class_image(2, 9, size=70).convert('P')
    return imgs


@pytest.mark.parametrize('method', ['phash', 'dhash', 'ahash', 'whash'])
def test_files_bit_identical_to_imagehash(tmp_path, photos, method):
    """Real photos and generated images, as files, hash sizes 8 and 16
    (plus 6 / 12 where the method allows): hash and flipped hash equal
    imagehash's hex on the same file."""
    paths = []
    for name, img in list(photos.items()) + list(generated_images().items()):
        ext = 'jpg' if img.mode in ('RGB', 'L') and 'noise' not in name \
            else 'png'
        path = tmp_path / f'{name}.{ext}'
        img.save(path)
        paths.append(str(path))
    sizes = (8, 16) if method == 'whash' else (6, 8, 12, 16)
    for hash_size in sizes:
        res = hash_images(
            paths,
            method=method,
            hash_size=hash_size,
            workers=0,
            progress=False)
        assert res.num_bits == hash_size**2
        assert not res.skipped, res.skipped
        for i, path in enumerate(res.paths):
            img = Image.open(path)
            ref = REFERENCE[method](img, hash_size=hash_size)
            ref_flip = REFERENCE[method](
                img.transpose(FLIP), hash_size=hash_size)
            assert res.hex(i) == str(ref), (path, hash_size)
            assert res.hex(i, flipped=True) == str(ref_flip), (path, hash_size)


def test_modes_bit_identical(tmp_path, photos):
    """CMYK JPEG, RGBA / palette / grayscale / LA PNG files hash exactly as
    imagehash hashes the opened file."""
    img = photos['coffee']
    files = {
        'cmyk.jpg': img.convert('CMYK'),
        'rgba.png': img.convert('RGBA'),
        'palette.png': img.convert('P'),
        'gray.png': img.convert('L'),
        'la.png': img.convert('LA'),
        'bilevel.png': img.convert('1'),
    }
    paths = []
    for fname, im in files.items():
        im.save(tmp_path / fname)
        paths.append(str(tmp_path / fname))
    res = hash_images(paths, workers=0, progress=False)
    assert res.paths == paths
    for i, p in enumerate(paths):
        opened = Image.open(p)
        assert res.hex(i) == str(imagehash.phash(opened)), p


def test_16bit_scaled_not_clipped(tmp_path, photos):
    """A 16-bit PNG hashes like its 8-bit version; imagehash (Pillow's
    convert('L') clips 16-bit values at 255) hashes a near-white image."""
    gray8 = np.asarray(photos['camera'].convert('L'))
    Image.fromarray(gray8).save(tmp_path / 'gray8.png')
    Image.fromarray(gray8.astype(np.uint16) * 257).save(tmp_path / 'g16.png')
    assert Image.open(tmp_path / 'g16.png').mode.startswith('I;16')
    res = hash_images([tmp_path / 'gray8.png', tmp_path / 'g16.png'],
                      workers=0,
                      progress=False)
    assert res.hex(0) == res.hex(1)
    clipped = imagehash.phash(Image.open(tmp_path / 'g16.png'))
    assert clipped - imagehash.phash(Image.open(tmp_path / 'gray8.png')) > 10


def test_flipped_hash_matches_mirror_copy(photos):
    """The flipped hash of a photo equals the hash of its mirror copy, and
    the plain hashes of the two are far apart (why flip-aware matching)."""
    img = photos['astronaut']
    h, f = hash_pil_image(img)
    h_mirror, _ = hash_pil_image(img.transpose(FLIP))
    assert np.array_equal(f, h_mirror)
    assert bin(int(h[0]) ^ int(h_mirror[0])).count('1') >= 20


def test_near_constant_never_hashed(tmp_path):
    """Flat and almost flat images are skipped with the reason; their
    imagehash hashes would all be equal."""
    flat = Image.new('RGB', (64, 48), (200, 30, 30))
    rng = np.random.default_rng(0)
    almost = np.full((64, 64), 90, np.uint8) + rng.integers(
        0, 2, (64, 64), dtype=np.uint8)
    for fname, im in [('flat.jpg', flat),
                      ('white.png', Image.new('L', (32, 32), 255)),
                      ('almost.png', Image.fromarray(almost))]:
        im.save(tmp_path / fname)
    paths = [
        str(tmp_path / n) for n in ('flat.jpg', 'white.png', 'almost.png')
    ]
    assert len({str(imagehash.phash(Image.open(p))) for p in paths[:2]}) == 1
    res = hash_images(paths, workers=0, progress=False)
    assert res.paths == []
    assert [p for p, _ in res.skipped] == paths
    assert all('near-constant' in r for _, r in res.skipped)
    with pytest.raises(SkipImage, match='near-constant'):
        hash_pil_image(flat)


def test_bad_files_reported_with_reasons(tmp_path, photos):
    good = tmp_path / 'good.jpg'
    photos['chelsea'].save(good)
    data = good.read_bytes()
    (tmp_path / 'truncated.jpg').write_bytes(data[:len(data) // 2])
    (tmp_path / 'empty.jpg').write_bytes(b'')
    (tmp_path / 'notimage.jpg').write_text('hello, not a jpeg')
    names = [
        'good.jpg', 'truncated.jpg', 'empty.jpg', 'notimage.jpg', 'missing.jpg'
    ]
    paths = [str(tmp_path / n) for n in names]
    res = hash_images(paths, workers=0, progress=False)
    assert res.paths == [paths[0]]
    reasons = dict(res.skipped)
    assert len(res.paths) + len(res.skipped) == len(paths)
    assert 'truncated' in reasons[paths[1]]
    assert reasons[paths[2]] == 'empty file (0 bytes)'
    assert 'not an image' in reasons[paths[3]]
    assert 'not found' in reasons[paths[4]]


def test_parallel_equals_serial_and_keeps_order(tmp_path, photos):
    paths = []
    for name, img in photos.items():
        img.save(tmp_path / f'{name}.jpg')
        paths.append(str(tmp_path / f'{name}.jpg'))
    (tmp_path / 'empty.jpg').write_bytes(b'')
    paths.insert(3, str(tmp_path / 'empty.jpg'))
    serial = hash_images(paths, workers=0, progress=False)
    parallel = hash_images(paths, workers=2, progress=False)
    assert parallel.paths == serial.paths == [
        p for p in paths if 'empty' not in p
    ]
    assert np.array_equal(parallel.hashes, serial.hashes)
    assert np.array_equal(parallel.flipped, serial.flipped)
    assert parallel.skipped == serial.skipped


def test_cache_hit_rehashes_nothing(tmp_path, photos, monkeypatch):
    paths = []
    for name in ('astronaut', 'coffee', 'camera'):
        photos[name].save(tmp_path / f'{name}.jpg')
        paths.append(str(tmp_path / f'{name}.jpg'))
    (tmp_path / 'empty.png').write_bytes(b'')
    paths.append(str(tmp_path / 'empty.png'))
    calls = []
    real = hashing._hash_file
    monkeypatch.setattr(hashing, '_hash_file',
                        lambda task: calls.append(task[0]) or real(task))
    cache = str(tmp_path / 'cache' / 'hashes.sqlite')
    kw = dict(workers=0, progress=False, cache_file=cache)
    first = hash_images(paths, **kw)
    assert len(calls) == 4 and first.num_cached == 0
    calls.clear()
    second = hash_images(paths, **kw)
    assert calls == [] and second.num_cached == 4
    assert np.array_equal(first.hashes, second.hashes)
    assert np.array_equal(first.flipped, second.flipped)
    assert second.skipped == first.skipped
    # a changed file (new mtime) is re-hashed, the others are not
    st = os.stat(paths[1])
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    hash_images(paths, **kw)
    assert calls == [paths[1]]
    # another method or hash size is a miss
    calls.clear()
    hash_images(paths, method='dhash', **kw)
    assert len(calls) == 4
    # flip=False rows cannot answer a flip=True request
    calls.clear()
    hash_images(paths, method='ahash', flip=False, **kw)
    hash_images(paths, method='ahash', flip=False, **kw)
    assert len(calls) == 4
    hash_images(paths, method='ahash', flip=True, **kw)
    assert len(calls) == 7  # the three images again; the skip is cached


def test_cache_keeps_decode_modes_apart(tmp_path, photos, monkeypatch):
    """Exact and fast hashes of one file are cached under different keys:
    neither answers for the other, each answers for itself, and the rows
    of an older cache (no decode in the key) still answer exact calls."""
    paths = []
    for name in ('brick', 'colorwheel'):  # exact and fast hashes differ
        photos[name].save(tmp_path / f'{name}.jpg', quality=90)
        paths.append(str(tmp_path / f'{name}.jpg'))
    calls = []
    real = hashing._hash_file
    monkeypatch.setattr(hashing, '_hash_file',
                        lambda task: calls.append(task[0]) or real(task))
    cache = str(tmp_path / 'hashes.sqlite')
    kw = dict(workers=0, progress=False, cache_file=cache)
    exact = hash_images(paths, **kw)
    fast = hash_images(paths, decode='fast', **kw)
    assert len(calls) == 4 and fast.num_cached == 0
    assert (exact.hashes != fast.hashes).all()
    calls.clear()
    exact2 = hash_images(paths, **kw)
    fast2 = hash_images(paths, decode='fast', **kw)
    assert calls == [] and exact2.num_cached == fast2.num_cached == 2
    assert fast2.decode == 'fast' and exact2.decode == 'exact'
    assert np.array_equal(exact2.hashes, exact.hashes)
    assert np.array_equal(fast2.hashes, fast.hashes)
    assert np.array_equal(fast2.flipped, fast.flipped)
    # exact rows are keyed as before the decode option (old caches valid)
    import sqlite3
    db = sqlite3.connect(cache)
    keys = {v for v, in db.execute('SELECT versions FROM hashes')}
    db.close()
    assert keys == {
        hashing._VERSIONS, hashing._VERSIONS + ';decode=fast,'
        'min_side=64'
    }


def test_bad_arguments():
    with pytest.raises(ValueError, match='unknown hash method'):
        hash_images([], method='md5')
    with pytest.raises(ValueError, match='power-of-two'):
        hash_images([], method='whash', hash_size=6)
    res = hash_images([], progress=False)
    assert res.hashes.shape == (0, 1) and res.flipped.shape == (0, 1)


def _hash_in_daemon(paths, queue):
    res = hash_images(paths, workers=2, progress=False)
    queue.put([res.hex(i) for i in range(len(res))])


def test_workers_fall_back_in_a_daemonic_process(tmp_path, photos):
    """Inside a DataLoader-like daemonic worker, which may not start child
    processes, hashing runs serially instead of failing."""
    import multiprocessing as mp
    paths = []
    for name in ('astronaut', 'coffee', 'camera', 'horse', 'china'):
        photos[name].save(tmp_path / f'{name}.jpg')
        paths.append(str(tmp_path / f'{name}.jpg'))
    ctx = mp.get_context('fork')
    queue = ctx.Queue()
    proc = ctx.Process(
        target=_hash_in_daemon, args=(paths, queue), daemon=True)
    proc.start()
    got = queue.get(timeout=120)
    proc.join(timeout=30)
    assert proc.exitcode == 0
    expected = [str(imagehash.phash(Image.open(p))) for p in paths]
    assert got == expected
