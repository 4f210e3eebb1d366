# Copyright (c) mmext contributors. All rights reserved.
"""mmext.dedup.decode: exact vs fast decode, and the fast mode through
hash_images, the shards, find_leakage and its CLI (the cache:
test_hashing.py)."""
import json
import os.path as osp

import imagehash
import numpy as np
import pytest
from PIL import Image

from mmext.dedup import (DEFAULT_THRESHOLD, find_cross_set_duplicates,
                         hash_images)
from mmext.dedup.decode import draft_scale, fast_min_side, load_image
from mmext.dedup.leakage import LeakageCheckError, find_leakage
from tests.conftest import ROOT, run_tool
from tests.test_dedup.conftest import HELDOUT, center_crop

SCRIPT = osp.join(ROOT, 'tools', 'dedup', 'find_leakage.py')
FLIP = Image.Transpose.FLIP_LEFT_RIGHT
#: Largest exact -> fast change of one file's 64-bit phash on the sample
#: photos as JPEG q90 (measured: 6 bits, 8 for the mirror of the synthetic
#: 'colorwheel'; mean 0.8), and the largest mean.
MAX_SHIFT, MAX_MEAN_SHIFT = 8, 1.5
# planted copy -> (edit, JPEG quality)
EDITS = {
    'flip': (lambda im: im.transpose(FLIP), 90),
    'jpeg70': (lambda im: im, 70),
    'resize0.5': (lambda im: im.resize(
        (im.width // 2, im.height // 2), Image.Resampling.BICUBIC), 90),
    'crop3%': (lambda im: center_crop(im, 0.03), 90),
    'crop5%': (lambda im: center_crop(im, 0.05), 90),
}


@pytest.fixture(scope='module')
def jpegs(tmp_path_factory, photos):
    """Every sample photo as a JPEG (q90) and planted JPEG copies of the
    natural photos (:data:`EDITS`)."""
    folder = tmp_path_factory.mktemp('jpegs')
    originals, copies = [], {}
    for name, img in photos.items():
        path = folder / f'{name}.jpg'
        img.save(path, quality=90)
        originals.append(str(path))
        if name not in HELDOUT:
            continue
        for edit, (func, quality) in EDITS.items():
            copy = folder / f'{name}.{edit}.jpg'
            func(img).save(copy, quality=quality)
            copies[str(copy)] = str(path)
    return originals, copies


def test_draft_scale_keeps_the_short_side():
    assert draft_scale(500, 375, 64) == 4  # 125 x 94
    assert draft_scale(500, 375, 128) == 2  # 250 x 188
    assert draft_scale(1000, 1000, 64) == 8  # 125 x 125
    assert draft_scale(4000, 100, 64) == 1  # the short side decides
    assert draft_scale(505, 600, 64) == 8  # ceil(505 / 8) = 64, as libjpeg
    assert draft_scale(503, 600, 64) == 4  # 63 < 64
    assert draft_scale(60, 60, 64) == 1
    assert fast_min_side(8) == 64 and fast_min_side(16, oversample=4) == 256


def test_fast_load_is_downscaled_luma(tmp_path, photos):
    """A JPEG decodes at the chosen DCT scale as 'L'; its pixels are the
    exact decode's, downscaled (close, not equal); a PNG decodes exactly."""
    img = photos['astronaut']  # 512 x 512
    img.save(tmp_path / 'a.jpg', quality=90)
    img.save(tmp_path / 'a.png')
    exact = load_image(tmp_path / 'a.jpg')
    fast = load_image(tmp_path / 'a.jpg', min_side=64)
    assert exact.size == (512, 512) and fast.size == (64, 64)
    assert fast.mode == 'L'
    reduced = np.asarray(exact.resize((64, 64), Image.Resampling.BOX), float)
    assert np.abs(np.asarray(fast, float) - reduced).mean() < 4
    assert load_image(tmp_path / 'a.jpg', min_side=128).size == (128, 128)
    png = load_image(tmp_path / 'a.png', min_side=64)
    assert png.size == (512, 512)
    assert np.array_equal(
        np.asarray(png), np.asarray(load_image(tmp_path / 'a.png')))


def test_fast_hashes_close_to_exact(jpegs):
    originals, _ = jpegs
    exact = hash_images(originals, workers=0, progress=False)
    fast = hash_images(originals, workers=0, progress=False, decode='fast')
    assert fast.paths == exact.paths == originals
    assert exact.decode == 'exact' and fast.decode == 'fast'
    for hashes in ('hashes', 'flipped'):
        shift = np.bitwise_count(
            getattr(exact, hashes) ^ getattr(fast, hashes)).sum(-1)
        assert shift.max() <= MAX_SHIFT, dict(zip(originals, shift))
        assert shift.mean() <= MAX_MEAN_SHIFT
        assert shift.any()  # it decoded differently at all


def test_fast_finds_every_planted_copy_exact_finds(jpegs):
    """At the documented threshold the fast mode finds every copy the exact
    mode finds (mirror, re-encode, half size, small crops) and pairs no
    distinct photos."""
    originals, copies = jpegs
    found = {}
    for decode in ('exact', 'fast'):
        kw = dict(workers=0, progress=False, decode=decode)
        pairs = find_cross_set_duplicates(
            hash_images(list(copies), **kw),
            hash_images(originals, **kw),
            threshold=DEFAULT_THRESHOLD)
        assert all(copies[p.query_path] == p.ref_path for p in pairs), \
            [p for p in pairs if copies[p.query_path] != p.ref_path]
        found[decode] = {p.query_path for p in pairs}
    easy = [c for c in copies if '.crop' not in c]
    assert set(easy) <= found['exact']
    assert found['exact'] <= found['fast'], found['exact'] - found['fast']


def test_non_jpeg_files_hash_exactly_in_fast_mode(tmp_path, photos):
    paths = []
    for fmt in ('png', 'bmp', 'webp', 'tiff'):
        path = tmp_path / f'coffee.{fmt}'
        photos['coffee'].save(path,
                              **({
                                  'lossless': True
                              } if fmt == 'webp' else {}))
        paths.append(str(path))
    res = hash_images(paths, workers=0, progress=False, decode='fast')
    assert res.paths == paths
    for i, path in enumerate(paths):
        img = Image.open(path)
        assert res.hex(i) == str(imagehash.phash(img)), path
        assert res.hex(
            i, flipped=True) == str(imagehash.phash(img.transpose(FLIP))), path


def test_fast_mode_keeps_skip_reasons(tmp_path, photos):
    photos['chelsea'].save(tmp_path / 'good.jpg')
    data = (tmp_path / 'good.jpg').read_bytes()
    (tmp_path / 'truncated.jpg').write_bytes(data[:len(data) // 2])
    (tmp_path / 'empty.jpg').write_bytes(b'')
    (tmp_path / 'notimage.jpg').write_text('hello, not a jpeg')
    Image.new('RGB', (300, 200), (90, 40, 40)).save(tmp_path / 'flat.jpg')
    paths = [
        str(tmp_path / n) for n in ('good.jpg', 'truncated.jpg', 'empty.jpg',
                                    'notimage.jpg', 'flat.jpg')
    ]
    kw = dict(workers=0, progress=False)
    fast = hash_images(paths, decode='fast', **kw)
    exact = hash_images(paths, **kw)
    assert fast.paths == exact.paths == paths[:1]
    reasons = dict(fast.skipped)
    assert 'truncated' in reasons[paths[1]]
    assert reasons[paths[2]] == 'empty file (0 bytes)'
    assert 'not an image' in reasons[paths[3]]
    assert 'near-constant' in reasons[paths[4]]


def test_bad_decode_mode_named(tmp_path):
    with pytest.raises(ValueError, match="decode mode 'turbo'.*exact, fast"):
        hash_images([], decode='turbo')
    with pytest.raises(LeakageCheckError, match="--decode 'turbo'"):
        find_leakage(
            str(tmp_path),
            str(tmp_path),
            str(tmp_path / 'out'),
            decode='turbo')


def test_shards_keep_the_decode_mode(planted, tmp_path, capsys):
    """Fast-decoded shards merge into fast hashes; merging them as exact
    is refused."""
    kw = dict(
        train=str(planted['root102']),
        heldout=str(planted['root17'] / 'jpg'),
        out_dir=str(tmp_path / 'leak'),
        workers=0,
        progress=False,
        decode='fast')
    for i in range(2):
        find_leakage(shard=f'{i}/2', **kw)
    with pytest.raises(LeakageCheckError, match='decode fast.*--decode'):
        find_leakage(merge=True, **dict(kw, decode='exact'))
    meta = find_leakage(merge=True, **kw)
    assert meta['decode'] == 'fast'
    assert meta['pairs'] == len(planted['expected'])
    assert 'fast decode' in capsys.readouterr().out


def test_cli_decode_flag(planted, tmp_path):
    out = tmp_path / 'leak'
    run_tool([
        SCRIPT, '--train', planted['root102'], '--heldout',
        planted['root17'] / 'jpg', '--out-dir', out, '--workers', '0',
        '--no-progress', '--decode', 'fast'
    ],
             cwd=tmp_path)
    lines = (out / 'exclude.txt').read_text(encoding='utf-8').splitlines()
    assert any(
        ln.startswith('# method: phash') and 'decode fast' in ln
        for ln in lines)
    assert any('--decode fast' in ln for ln in lines)  # the command
    excluded = [ln for ln in lines if ln and not ln.startswith('#')]
    assert sorted(excluded) == sorted(planted['expected'])
    meta = json.loads((out / 'pairs.json').read_text())['meta']
    assert meta['decode'] == 'fast'


def test_shards_from_before_the_decode_mode_load_as_exact(tmp_path, jpegs):
    """A shard written before the mode was recorded (5 meta entries) merges
    as exact hashes."""
    from mmext.dedup.shards import load_shards, save_shard
    originals = jpegs[0][:3]
    out, res = save_shard(
        str(tmp_path), 'train', originals, 0, 1,
        lambda p: hash_images(p, workers=0, progress=False))
    with np.load(out) as z:
        arrays = {k: z[k] for k in z.files}
    assert arrays['meta'][-1] == 'exact'
    arrays['meta'] = arrays['meta'][:5]
    with open(out, 'wb') as f:
        np.savez(f, **arrays)
    merged = load_shards(str(tmp_path), 'train', originals)
    assert merged.decode == 'exact' and merged.paths == originals
    assert np.array_equal(merged.hashes, res.hashes)
