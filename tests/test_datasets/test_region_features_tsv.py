# Copyright (c) mmext contributors. All rights reserved.
"""LoadRegionFeatures over the released BUTD TSV layout (written here the
way bottom-up-attention ``tools/generate_tsv.py`` writes it) and over
``.npz``: same arrays, a sidecar index rebuilt when the TSV changes,
bounded lines, per-process handles, ids via ``image_ids.csv``, and the
``cls_prob`` check of masked-region configs."""
import base64
import csv
import multiprocessing as mp
import os
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmext.datasets.region_features import (RegionFileError,
                                            load_region_features,
                                            save_region_npz)
from mmext.datasets.region_tsv import (RegionTSV, build_tsv_index, index_path,
                                       tsv_image_id)
from mmext.datasets.transforms.vilbert import LoadRegionFeatures
from mmext.dedup.textio import escape_path
from mmext.utils.fileio import InputFileError

FIELDNAMES = [
    'image_id', 'image_w', 'image_h', 'num_boxes', 'boxes', 'features'
]


def make_record(image_id, seed, n=None, dims=32):
    rng = np.random.RandomState(seed)
    n = rng.randint(10, 37) if n is None else n
    xy = rng.rand(n, 2).astype(np.float32) * 50
    wh = rng.rand(n, 2).astype(np.float32) * 40 + 1
    return dict(
        image_id=image_id,
        image_w=120,
        image_h=96,
        num_boxes=n,
        boxes=np.concatenate([xy, xy + wh], 1),
        features=rng.rand(n, dims).astype(np.float32))


def write_generate_tsv(path, records):
    """As generate_tsv.py: csv.DictWriter, tab delimiter, its fieldnames,
    base64 of the float32 arrays (so '\\r\\n' line ends)."""
    with open(path, 'a', newline='') as f:
        writer = csv.DictWriter(f, delimiter='\t', fieldnames=FIELDNAMES)
        for r in records:
            writer.writerow(
                dict(
                    image_id=r['image_id'],
                    image_w=r['image_w'],
                    image_h=r['image_h'],
                    num_boxes=r['num_boxes'],
                    boxes=base64.b64encode(r['boxes'].tobytes()).decode(),
                    features=base64.b64encode(
                        r['features'].tobytes()).decode()))


@pytest.fixture
def released(tmp_path):
    """COCO-style int ids split over two TSV files, and the same records
    as per-image .npz files."""
    records = [make_record(9 * i + 9, i) for i in range(8)]
    tsv_dir, npz_dir = tmp_path / 'tsv', tmp_path / 'npz'
    tsv_dir.mkdir()
    npz_dir.mkdir()
    write_generate_tsv(tsv_dir / 'train.tsv.0', records[:5])
    write_generate_tsv(tsv_dir / 'train.tsv.1', records[5:])
    for r in records:
        save_region_npz(str(npz_dir / f"{r['image_id']}.npz"), r)
    return records, tsv_dir, npz_dir


def test_tsv_and_npz_give_the_same_arrays(released):
    records, tsv_dir, npz_dir = released
    assert b'\r\n' in (tsv_dir / 'train.tsv.0').read_bytes()
    from_tsv = LoadRegionFeatures(
        feature_file=str(tsv_dir / 'train.tsv.*'), id_key='image_id')
    from_list = LoadRegionFeatures(
        feature_file=[
            str(tsv_dir / 'train.tsv.1'),
            str(tsv_dir / 'train.tsv.0')
        ],
        id_key='image_id',
        max_regions=12)
    from_npz = LoadRegionFeatures(str(npz_dir), id_key='image_id')
    for r in records:
        sample = dict(
            img_path=f"COCO_{r['image_id']:012d}.jpg", image_id=r['image_id'])
        a, b = from_tsv(dict(sample)), from_npz(dict(sample))
        np.testing.assert_array_equal(a['region_feats'], r['features'])
        np.testing.assert_array_equal(a['region_feats'], b['region_feats'])
        np.testing.assert_array_equal(a['region_locs'], b['region_locs'])
        assert 'region_targets' not in a
        c = from_list(dict(sample))
        np.testing.assert_array_equal(c['region_feats'], r['features'][:12])
    # the stem rule: a sample without image_id looks up its file stem
    by_stem = LoadRegionFeatures(feature_file=str(tsv_dir / '*'))
    out = by_stem(dict(img_path='/data/coco/27.jpg'))
    np.testing.assert_array_equal(out['region_feats'], records[2]['features'])
    with pytest.raises(FileNotFoundError) as e:
        by_stem(dict(img_path='/data/coco/COCO_000000000027.jpg'))
    msg = str(e.value)
    assert "'COCO_000000000027' (from file stem" in msg and 'id_key' in msg
    assert '\n' not in msg


def test_string_and_escaped_ids(tmp_path):
    odd = 'tab\there "q"'
    records = [make_record('img_a', 1), make_record(tsv_image_id(odd), 2)]
    write_generate_tsv(tmp_path / 'r.tsv', records)
    tsv = RegionTSV(str(tmp_path / 'r.tsv'))
    np.testing.assert_array_equal(
        tsv.get('img_a')['features'], records[0]['features'])
    # the raw id finds the row mmext's extractor wrote escaped
    np.testing.assert_array_equal(tsv.get(odd)['boxes'], records[1]['boxes'])
    assert tsv.get('img_b') is None and len(tsv) == 2


def test_index_is_reused_and_rebuilt_when_the_tsv_changes(
        released, monkeypatch):
    records, tsv_dir, _ = released
    path = str(tsv_dir / 'train.tsv.0')
    RegionTSV(path).get(9)
    side = index_path(path)
    assert os.path.isfile(side)
    built = os.stat(side).st_mtime_ns

    import mmext.datasets.region_tsv as region_tsv
    scans = []
    real_scan = region_tsv._scan
    monkeypatch.setattr(region_tsv, '_scan',
                        lambda *a: scans.append(a) or real_scan(*a))
    assert RegionTSV(path).get(18) is not None
    assert scans == [] and os.stat(side).st_mtime_ns == built

    new = make_record(1000, 99)
    time.sleep(0.01)
    write_generate_tsv(path, [new])  # the TSV grows: the index is stale
    got = RegionTSV(path).get(1000)
    assert len(scans) == 1
    np.testing.assert_array_equal(got['features'], new['features'])

    # same size, new content (a row rewritten in place): mtime differs
    data = bytearray(open(path, 'rb').read())
    first_id = data.index(b'\t')
    data[:first_id] = b'7'  # id 9 -> 7, one byte each
    with open(path, 'wb') as f:
        f.write(bytes(data))
    os.utime(path, ns=(built + 10**9, built + 10**9))
    tsv = RegionTSV(path)
    assert tsv.get(7) is not None and tsv.get(9) is None
    assert len(scans) == 2

    # a damaged sidecar is rebuilt, not trusted
    with open(side, 'wb') as f:
        f.write(b'not an npz')
    assert RegionTSV(path).get(7) is not None and len(scans) == 3


def _lookup(args):
    path, ids = args
    tsv = RegionTSV(path)
    return [float(tsv.get(i)['features'].sum()) for i in ids]


def test_processes_build_once_and_read_with_own_handles(released):
    records, tsv_dir, _ = released
    path = str(tsv_dir / 'train.tsv.0')
    ids = [r['image_id'] for r in records[:5]]
    want = [float(r['features'].sum()) for r in records[:5]]
    ctx = mp.get_context('fork')
    with ctx.Pool(2) as pool:  # both build at once: lock + atomic replace
        got = pool.map(_lookup, [(path, ids), (path, ids[::-1])])
    assert got == [want, want[::-1]]
    assert not [n for n in os.listdir(tsv_dir) if '.tmp' in n]
    # a handle opened before fork is not shared with the child
    tsv = RegionTSV(path)
    tsv.get(ids[0])
    with ctx.Pool(1) as pool:
        assert pool.apply(_child_sum, (tsv, ids[1])) == want[1]
    assert float(tsv.get(ids[2])['features'].sum()) == want[2]


def _child_sum(tsv, image_id):
    return float(tsv.get(image_id)['features'].sum())


def test_long_and_damaged_lines_are_one_line_errors(tmp_path):
    path = tmp_path / 'r.tsv'
    write_generate_tsv(path, [make_record('ok', 1, n=36, dims=2048)])
    line = path.read_bytes()
    with pytest.raises(RegionFileError) as e:
        RegionTSV(str(path), max_line_bytes=len(line) - 10).get('ok')
    assert f'{path}: line 1 is longer than max_line_bytes' in str(e.value)
    assert RegionTSV(str(path), max_line_bytes=len(line)).get('ok')
    with open(path, 'ab') as f:
        f.write(b'bad\t10\t10\t2\tAAAA\t!!!!\r\n')
    with pytest.raises(RegionFileError) as e:
        RegionTSV(str(path)).get('bad')
    assert str(e.value).startswith(f'{path}: line 2 is not a BUTD TSV row')


def test_image_ids_csv_resolves_same_stems(tmp_path):
    """extract_regions.py names same.jpg / same.png by file name and lists
    them in image_ids.csv: each image finds its own regions."""
    images = tmp_path / 'images'
    out = tmp_path / 'regions'
    out.mkdir()
    recs = {
        'same.jpg': make_record('same.jpg', 1),
        'same.png': make_record('same.png', 2),
        'other': make_record('other', 3)
    }
    for image_id, r in recs.items():
        save_region_npz(str(out / f'{image_id}.npz'), r)
    write_generate_tsv(out / 'regions_rank0.tsv', recs.values())
    with open(out / 'image_ids.csv', 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['image_id', 'image_path'])
        for name in ('same.jpg', 'same.png', 'other.png'):
            image_id = 'other' if name == 'other.png' else name
            w.writerow([escape_path(image_id), str(images / name)])
    for load in (LoadRegionFeatures(str(out)),
                 LoadRegionFeatures(feature_file=str(out / '*.tsv'))):
        for name, image_id in (('same.jpg', 'same.jpg'),
                               ('same.png', 'same.png'), ('other.png',
                                                          'other')):
            got = load(dict(img_path=str(images / name)))
            np.testing.assert_array_equal(got['region_feats'],
                                          recs[image_id]['features'])
        # another root with the same file name: matched by name
        got = load(dict(img_path=f'/elsewhere/{name}'))
        np.testing.assert_array_equal(got['region_feats'],
                                      recs['other']['features'])


def test_cls_prob_required_by_masked_region_configs(tmp_path, released):
    _, tsv_dir, npz_dir = released
    with pytest.raises(ValueError) as e:
        LoadRegionFeatures(
            feature_file=str(tsv_dir / '*'), require_cls_prob=True)
    msg = str(e.value)
    assert str(tsv_dir / '*') in msg and 'has no cls_prob' in msg
    assert 'model.losses.mrm=0' in msg and '\n' not in msg
    load = LoadRegionFeatures(str(npz_dir), require_cls_prob=True)
    with pytest.raises(ValueError) as e:
        load(dict(img_path='9.jpg'))
    assert str(npz_dir / '9.npz') in str(e.value)
    assert 'extract_regions.py' in str(e.value)
    rec = make_record('t', 5, n=4)
    rec['cls_prob'] = np.full((4, 1601), 1 / 1601, np.float32)
    save_region_npz(str(npz_dir / 't.npz'), rec)
    out = load(dict(img_path='t.jpg'))
    assert out['region_targets'].shape == (4, 1601)

    # the shipped pretraining config asks for it; pointing it at TSVs
    # fails when its pipeline is built (before any training step)
    from mmengine.config import Config
    from mmengine.dataset import Compose

    from mmext.utils import register_all_modules
    from tests.conftest import ROOT
    register_all_modules()
    cfg = Config.fromfile(
        str(ROOT / 'configs/vilbert/'
            'vilbert_regions-bert-base_1xb20-pretrain_cc.py'))
    step = cfg.train_dataloader.dataset.pipeline[0]
    assert step.type == 'LoadRegionFeatures' and step.require_cls_prob
    assert cfg.model.losses.mrm > 0
    step.update(feature_dir=None, feature_file=str(tsv_dir / '*'))
    with pytest.raises(ValueError, match='has no cls_prob'):
        Compose([step])


def test_exactly_one_source():
    with pytest.raises(ValueError, match='exactly one of feature_dir'):
        LoadRegionFeatures()
    with pytest.raises(FileNotFoundError, match='matches no file'):
        LoadRegionFeatures(feature_file='/nowhere/*.tsv')


def test_load_region_features_reads_tsv_rows_bounded(released):
    records, tsv_dir, _ = released
    got = load_region_features(str(tsv_dir / 'train.tsv.0'), image_id='18')
    np.testing.assert_array_equal(got['features'], records[1]['features'])
    assert build_tsv_index(str(tsv_dir / 'train.tsv.0'))['hashes'].size == 5


@settings(
    max_examples=max(1, 100 * settings.default.max_examples // 60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    junk=st.binary(max_size=300),
    cut=st.integers(0, 400),
    where=st.sampled_from(['replace', 'append', 'truncate']))
def test_fuzz_tsv_bytes(tmp_path, junk, cut, where):
    """Damaged TSV bytes: a correct row, None, or one RegionFileError line
    naming the file; never another exception, never over the bound."""
    path = tmp_path / 'f.tsv'
    path.unlink(missing_ok=True)
    for side in tmp_path.glob('f.tsv.*'):
        side.unlink()
    write_generate_tsv(path, [make_record('a', 1, n=3, dims=8)])
    good = path.read_bytes()
    data = {
        'replace': junk,
        'append': good + junk,
        'truncate': good[:cut] + junk
    }[where]
    path.write_bytes(data)
    tracemalloc.start()
    try:
        tsv = RegionTSV(str(path), max_line_bytes=512)
        for key in ('a', 'b'):
            got = tsv.get(key)
            if got is not None:
                assert got['features'].size * 4 <= 512
    except (RegionFileError, InputFileError) as e:
        msg = str(e)
        assert str(path) in msg and '\n' not in msg
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 1 << 20  # 1 MiB budget for a 512-byte line bound
