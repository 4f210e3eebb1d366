# Copyright (c) mmext contributors. All rights reserved.
"""The geometric stage: crops, rotations and borders found, distinct photos
not paired, candidates + verification equal to brute force, cached
features, shards, and the outputs (the hash stage's unchanged)."""
import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmext.dedup import find_leakage, read_exclude_file
from mmext.dedup.geometric import (DEFAULT_RULE, find_geometric_pairs,
                                   verify_pair)
from mmext.dedup.geometric_features import extract_features, trim_borders
from mmext.dedup.geometric_report import draw_geometric_pair

ROOT = Path(__file__).resolve().parents[2]

HELD = ('astronaut', 'chelsea', 'coffee', 'camera', 'china')


def _small(img, side=240):
    k = side / max(img.size)
    return img.resize((round(img.width * k), round(img.height * k)),
                      Image.LANCZOS)


def _letterbox(img):
    canvas = Image.new('RGB', (round(img.height * 16 / 9), img.height))
    canvas.paste(img, ((canvas.width - img.width) // 2, 0))
    return canvas


# training file -> (held-out source, edit); a hash finds only 'reencode'
PLANTED = {
    'crop60.jpg': ('astronaut', lambda im: im.crop(
        (20, 30, 20 + round(im.width * 0.775), 30 + round(im.height * 0.775)))
                   ),
    'rot10.jpg':
    ('chelsea', lambda im: im.rotate(10, Image.BICUBIC, expand=True)),
    'letterbox.jpg': ('coffee', _letterbox),
    'rot90.jpg': ('camera', lambda im: im.rotate(90, expand=True)),
    'reencode.jpg': ('china', lambda im: im),
}


@pytest.fixture(scope='module')
def sets(photos, tmp_path_factory):
    """``heldout/`` (left halves of 5 photos), ``train/`` (planted copies
    and the right halves: same photos, no shared pixels)."""
    root = tmp_path_factory.mktemp('geo')
    held, train = root / 'heldout', root / 'train'
    held.mkdir()
    train.mkdir()
    halves = {}
    for name in HELD:
        img = _small(photos[name], 360)
        w = img.width // 2
        halves[name] = img.crop((0, 0, w, img.height))
        halves[name].save(held / f'{name}.jpg', quality=90)
        img.crop((w, 0, img.width, img.height)).save(
            train / f'{name}_right.jpg', quality=90)
    for fname, (source, edit) in PLANTED.items():
        edit(halves[source]).save(train / fname, quality=85)
    return root


def _pairs_csv(path):
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope='module')
def runs(sets):
    """The hash-only run and the geometric run on the same folders."""
    out = {}
    for stage in ('hash', 'geometric'):
        out[stage] = sets / f'out_{stage}'
        find_leakage(
            str(sets / 'train'),
            str(sets / 'heldout'),
            str(out[stage]),
            workers=0,
            progress=False,
            stage=stage)
    return out


def test_planted_found_distinct_not(runs, sets):
    excluded = set(read_exclude_file(runs['geometric'] / 'exclude.txt'))
    assert excluded == set(PLANTED)
    # the hash stage alone finds the re-encode only
    assert set(read_exclude_file(runs['hash'] /
                                 'exclude.txt')) == {'reencode.jpg'}


def test_pairs_csv_evidence(runs):
    rows = _pairs_csv(runs['geometric'] / 'pairs.csv')
    by_file = {Path(r['train_path']).name: r for r in rows}
    assert by_file['reencode.jpg']['stage'] == 'hash'
    assert by_file['reencode.jpg']['inliers'] == ''
    for fname in set(PLANTED) - {'reencode.jpg'}:
        row = by_file[fname]
        assert row['stage'] == 'geometric' and row['distance'] == ''
        assert Path(row['heldout_path']).stem == PLANTED[fname][0]
        assert int(row['inliers']) >= DEFAULT_RULE['min_inliers']
        assert 0 < float(row['overlap']) <= 1
        assert np.asarray(json.loads(row['transform'])).shape == (2, 3)
    assert abs(abs(float(by_file['rot10.jpg']['angle'])) - 10) < 2
    assert abs(abs(float(by_file['rot90.jpg']['angle'])) - 90) < 2
    # a 60 % crop covers ~60 % of its source
    assert 0.45 < float(by_file['crop60.jpg']['overlap']) < 0.75
    meta = json.loads((runs['geometric'] / 'pairs.json').read_text())
    assert meta['meta']['geometric_pairs'] == 4
    assert meta['meta']['hash_pairs'] == 1
    assert {p['stage'] for p in meta['pairs']} == {'hash', 'geometric'}


def test_hash_outputs_unchanged(runs):
    hash_rows = _pairs_csv(runs['hash'] / 'pairs.csv')
    geo_rows = [
        r for r in _pairs_csv(runs['geometric'] / 'pairs.csv')
        if r['stage'] == 'hash'
    ]
    keys = ('train_path', 'heldout_path', 'distance', 'variant')
    assert [{k: r[k] for k in keys} for r in geo_rows] == hash_rows
    # a hash-only run keeps the old columns
    assert list(hash_rows[0]) == list(keys)


def test_report_pictures(runs):
    page = (runs['geometric'] / 'report.html').read_text()
    assert page.count('class="geo"') == 4
    assert 'inliers' in page
    assert (runs['geometric'] / 'pairs.png').stat().st_size > 0


def test_verification_equals_brute_force(sets):
    train = extract_features(
        sorted(map(str, (sets / 'train').iterdir())),
        workers=0,
        progress=False)
    held = extract_features(
        sorted(map(str, (sets / 'heldout').iterdir())),
        workers=0,
        progress=False)
    found = {
        (p.query_index, p.ref_index)
        for p in find_geometric_pairs(train, held, workers=0, progress=False)
    }
    brute = {(i, j)
             for i, a in enumerate(train.features)
             for j, b in enumerate(held.features) if verify_pair(a, b)}
    assert found == brute and len(brute) == len(PLANTED)


def test_feature_cache_reused(sets, tmp_path):
    paths = sorted(map(str, (sets / 'heldout').iterdir()))
    cache = str(tmp_path / 'cache.sqlite')
    first = extract_features(
        paths, workers=0, cache_file=cache, progress=False)
    again = extract_features(
        paths, workers=0, cache_file=cache, progress=False)
    assert first.num_cached == 0 and again.num_cached == len(paths)
    for a, b in zip(first.features, again.features):
        assert np.array_equal(a.desc, b.desc) and a.box == b.box
    st = os.stat(paths[0])
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = extract_features(
        paths, workers=0, cache_file=cache, progress=False)
    assert changed.num_cached == len(paths) - 1


def test_flat_image_skipped_with_reason(tmp_path):
    Image.new('RGB', (100, 80), (40, 90, 20)).save(tmp_path / 'flat.png')
    res = extract_features([str(tmp_path / 'flat.png')],
                           workers=0,
                           progress=False)
    assert not res.paths and 'no ORB keypoint' in res.skipped[0][1]


def test_trim_borders():
    arr = np.zeros((90, 160), np.uint8)
    arr[10:80, 30:130] = np.random.default_rng(0).integers(50, 255, (70, 100))
    assert trim_borders(arr) == (30, 10, 130, 80)
    flat = np.full((50, 50), 7, np.uint8)
    assert trim_borders(flat) == (0, 0, 50, 50)


def test_picture_outlines_region(runs, sets):
    train = extract_features([str(sets / 'train' / 'crop60.jpg')],
                             workers=0,
                             progress=False)
    held = extract_features([str(sets / 'heldout' / 'astronaut.jpg')],
                            workers=0,
                            progress=False)
    pair, = find_geometric_pairs(train, held, workers=0, progress=False)
    img = np.asarray(draw_geometric_pair(pair, tile=200))
    red = (img[..., 0] > 230) & (img[..., 1] < 30) & (img[..., 2] < 30)
    right = red[:, img.shape[1] // 2:]
    assert right.sum() > 100  # the crop's frame on the held-out image


def test_cli_shards_merge_equal_single_run(sets, runs, tmp_path):
    from tests.conftest import run_tool
    out = tmp_path / 'sharded'
    args = [
        ROOT / 'tools/dedup/find_leakage.py', '--train', sets / 'train',
        '--heldout', sets / 'heldout', '--out-dir', out, '--stage',
        'geometric', '--workers', '0', '--no-progress'
    ]
    for i in range(2):
        run_tool(args + ['--shard', f'{i}/2'], cwd=ROOT)
    assert (out / 'features' / 'train.shard-1-of-2.npz').is_file()
    proc = run_tool(args + ['--merge'], cwd=ROOT)
    assert '4 geometric' in proc.stdout
    assert (read_exclude_file(out / 'exclude.txt') == read_exclude_file(
        runs['geometric'] / 'exclude.txt'))


def test_guard17_config_with_geometric_stage(tmp_path):
    """flowers102_guard17 with ``geometric=True``: a planted crop of a
    Flowers-17 test image is dropped; the hash guard alone keeps it."""
    from mmengine.config import Config

    from mmext.datasets.flowers import Flowers17
    from mmext.registry import DATASETS
    from mmext.testing.flowers import make_flowers17, make_flowers102
    make_flowers17(tmp_path / 'f17', per_class=4, size=64)
    test = Flowers17(str(tmp_path / 'f17'), split='test', split_id=1)
    source = test.get_data_info(0)['img_path']
    crop, = make_flowers102(
        tmp_path / 'f102',
        per_class=3,
        size=64,
        duplicates_of=[source],
        edits=('crop', ))
    cfg = Config.fromfile(ROOT /
                          'configs/_base_/datasets/flowers102_guard17.py')
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.dataset.data_root = str(tmp_path / 'f102')
    for heldout in ds_cfg.heldout:
        heldout.data_root = str(tmp_path / 'f17')
    ds_cfg.hash_cfg.update(
        cache_file=str(tmp_path / 'cache.sqlite'), workers=0)
    ds_cfg.on_leak = 'filter'
    assert len(DATASETS.build(ds_cfg.to_dict())) == 102  # hashes miss it
    ds_cfg.geometric = True
    ds = DATASETS.build(ds_cfg.to_dict())
    assert len(ds) == 101
    assert ds.excluded == [(crop.path, 'leak')]
    assert ds.leaks[0].stage == 'geometric'


def test_tiny_image_and_bad_stage(tmp_path, sets):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (32, 32, 3),
                                 np.uint8)).save(tmp_path / 'tiny.png')
    res = extract_features([str(tmp_path / 'tiny.png')],
                           workers=0,
                           progress=False)
    assert 'too small for local features (32x32' in res.skipped[0][1]
    from mmext.dedup import LeakageCheckError
    with pytest.raises(LeakageCheckError, match="--stage 'sift'"):
        find_leakage(
            str(sets / 'train'),
            str(sets / 'heldout'),
            str(tmp_path / 'out'),
            stage='sift')
