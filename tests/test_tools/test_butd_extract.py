# Copyright (c) mmext contributors. All rights reserved.
"""Region extraction: CLI outputs, resuming, unreadable images, sharding,
and the npz / TSV region files ViLBERT reads."""
import base64
import csv
import os

import numpy as np
import pytest
import torch

from mmext.apis.butd_extraction import (extract_regions, init_butd_detector,
                                        list_images, regions_record)
from mmext.apis.region_files import assign_image_ids
from mmext.datasets.region_features import (RegionFileError, iter_tsv_regions,
                                            load_region_features,
                                            region_locations)
from mmext.datasets.region_tsv import tsv_image_id
from mmext.dedup.textio import unescape_path
from mmext.models.detectors import BUTDFasterRCNN
from ..conftest import ROOT, run_tool
from ..test_apis.infer_workspaces import BUTD_ARCH

cv2 = pytest.importorskip('cv2')

TOOL = ROOT / 'tools' / 'feature_extraction' / 'extract_regions.py'
ARCH = BUTD_ARCH  # the tiny BUTD of the inferencer tests
TEST_CFG = dict(target_size=96, max_size=160, post_nms_top_n=40)
SELECT = dict(min_boxes=3, max_boxes=8)


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp('butd_extract')
    torch.manual_seed(0)
    model = BUTDFasterRCNN(**ARCH, test_cfg=TEST_CFG)
    for m in model.modules():  # spread the logits so scores differ
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=0.5)
    torch.save(dict(state_dict=model.state_dict()), ws / 'butd_tiny.pth')
    cfg = ws / 'butd_tiny.py'
    args = ', '.join(f'{k}={v!r}' for k, v in ARCH.items())
    cfg.write_text(
        f"_base_ = ['{ROOT}/configs/butd/butd_faster-rcnn_r101-caffe-c4_vg"
        f".py']\nmodel = dict({args}, test_cfg={TEST_CFG!r})\n"
        'extract_cfg = dict(min_boxes=3, max_boxes=8)\n')
    images = ws / 'images'
    images.mkdir()
    rng = np.random.RandomState(0)
    for i, hw in enumerate([(60, 90), (120, 70), (64, 64)]):
        cv2.imwrite(
            str(images / f'img{i}.png'),
            rng.randint(0, 256, hw + (3, )).astype(np.uint8))
    (images / 'broken.jpg').write_bytes(b'\xff\xd8 not really a jpeg')
    (images / 'empty.png').write_bytes(b'')
    (images / 'notes.txt').write_text('not an image')
    return ws


def test_cli_writes_npz_and_tsv(workspace):
    out = workspace / 'regions'
    proc = run_tool([
        TOOL, workspace / 'butd_tiny.py', workspace / 'butd_tiny.pth',
        '--images', workspace / 'images', '--out', out, '--format', 'npz',
        'tsv', '--no-progress'
    ],
                    cwd=workspace)
    assert '3 extracted, 0 already done, 2 unreadable' in proc.stdout
    failed = (out / 'failed_rank0.txt').read_text().splitlines()
    assert sorted(line.split('\t')[0].rsplit('/', 1)[1]
                  for line in failed) == ['broken.jpg', 'empty.png']
    assert any('empty file' in line for line in failed)
    npz = load_region_features(str(out / 'img1.npz'))
    assert (npz['image_w'], npz['image_h']) == (70, 120)
    assert 3 <= npz['num_boxes'] <= 8
    assert npz['features'].shape == (npz['num_boxes'], 128)
    assert npz['cls_prob'].shape == (npz['num_boxes'], 7)
    assert npz['object_ids'].min() >= 1 and npz['attr_ids'].min() >= 1
    np.testing.assert_allclose(npz['object_scores'],
                               npz['cls_prob'][:, 1:].max(1))
    assert (npz['boxes'][:, 2] <= 69).all() and (npz['boxes'] >= 0).all()
    tsv = load_region_features(str(out / 'regions_rank0.tsv'), image_id='img1')
    np.testing.assert_array_equal(tsv['boxes'], npz['boxes'])
    np.testing.assert_array_equal(tsv['features'], npz['features'])
    np.testing.assert_allclose(tsv['locations'], npz['locations'])
    with pytest.raises(RegionFileError, match='holds several images'):
        load_region_features(str(out / 'regions_rank0.tsv'))


def test_npz_equals_model_output(workspace):
    model, cfg = init_butd_detector(
        str(workspace / 'butd_tiny.py'), str(workspace / 'butd_tiny.pth'))
    out = workspace / 'direct'
    extract_regions(
        model,
        list_images(str(workspace / 'images'))[2:3],
        str(out),
        select_cfg=SELECT,
        progress=False)
    img = cv2.imread(str(workspace / 'images' / 'img0.png'))
    want = regions_record(model.predict_image(img), 'img0', SELECT)
    got = load_region_features(str(out / 'img0.npz'))
    for key in ('boxes', 'features', 'object_ids', 'attr_scores', 'cls_prob'):
        np.testing.assert_array_equal(got[key], want[key])
    assert got['image_id'] == 'img0'


def test_resume_skips_done_and_repairs_torn_tsv(workspace, tmp_path):
    model, _ = init_butd_detector(
        str(workspace / 'butd_tiny.py'), str(workspace / 'butd_tiny.pth'))
    images = list_images(str(workspace / 'images'))
    first = extract_regions(
        model, images, str(tmp_path), ('npz', 'tsv'), SELECT, progress=False)
    assert first['done'] == 3 and len(first['failed']) == 2
    tsv = tmp_path / 'regions_rank0.tsv'
    full = tsv.read_bytes()
    tsv.write_bytes(full[:-100])  # killed while writing the last row
    os.remove(tmp_path / 'img0.npz')
    again = extract_regions(
        model, images, str(tmp_path), ('npz', 'tsv'), SELECT, progress=False)
    assert again['done'] == 2 and again['skipped'] == 1  # img0, img2 redone
    rows = tsv.read_text().splitlines()
    assert sorted(r.split('\t')[0] for r in rows) == ['img0', 'img1', 'img2']
    assert tsv.read_bytes().count(b'\n') == 3


def test_sharding_from_torchrun_env(workspace, tmp_path, monkeypatch):
    model, _ = init_butd_detector(
        str(workspace / 'butd_tiny.py'), str(workspace / 'butd_tiny.pth'))
    images = list_images(str(workspace / 'images'))
    assert [os.path.basename(p) for p in images] == [
        'broken.jpg', 'empty.png', 'img0.png', 'img1.png', 'img2.png'
    ]
    monkeypatch.setenv('RANK', '1')
    monkeypatch.setenv('WORLD_SIZE', '2')
    summary = extract_regions(
        model, images, str(tmp_path), ('npz', ), SELECT, progress=False)
    # rank 1 of 2 takes every second image from the second: empty, img1
    assert summary['done'] == 1
    assert [os.path.basename(p) for p, _ in summary['failed']] == ['empty.png']
    assert [p.name for p in tmp_path.glob('*.npz')] == ['img1.npz']
    assert 'empty.png' in (tmp_path / 'failed_rank1.txt').read_text()


def test_region_locations_and_tsv_format(tmp_path):
    boxes = np.array([[0, 0, 50, 20], [10, 4, 30, 40]], np.float32)
    loc = region_locations(boxes, 100, 40)
    np.testing.assert_allclose(
        loc, [[0, 0, .5, .5, .25], [.1, .1, .3, 1., .18]], rtol=1e-6)
    feats = np.arange(8, dtype=np.float32).reshape(2, 4)
    row = '\t'.join([
        '42', '100', '40', '2',
        base64.b64encode(boxes.tobytes()).decode(),
        base64.b64encode(feats.tobytes()).decode()
    ])
    (tmp_path / 'r.tsv').write_text(row + '\n')
    got = load_region_features(str(tmp_path / 'r.tsv'))
    assert (got['image_id'], got['image_w'], got['num_boxes']) == ('42', 100,
                                                                   2)
    np.testing.assert_array_equal(got['features'], feats)
    np.testing.assert_allclose(got['locations'], loc)
    with pytest.raises(RegionFileError, match="no image '7'"):
        load_region_features(str(tmp_path / 'r.tsv'), image_id='7')
    np.savez(tmp_path / 'bad.npz', features=feats)
    with pytest.raises(RegionFileError, match=r"lacks \['boxes'"):
        load_region_features(str(tmp_path / 'bad.npz'))


def test_malformed_region_files_are_one_line(tmp_path):
    """A region file whose arrays cannot describe regions is refused with
    the file named, by the loader ViLBERT's LoadRegionFeatures uses."""
    import numpy as np
    import pytest

    from mmext.datasets.region_features import (RegionFileError,
                                                load_region_features)
    from mmext.datasets.transforms.vilbert import LoadRegionFeatures
    good = dict(
        features=np.ones((3, 8), np.float32),
        boxes=np.array([[0, 0, 4, 4]] * 3, np.float32),
        image_w=np.float32(8),
        image_h=np.float32(8))
    bad = {
        'rows': dict(good, features=np.ones((2, 8), np.float32)),
        'boxes': dict(good, boxes=np.ones((3, 5), np.float32)),
        'size': dict(good, image_w=np.float32(0)),
        'nan': dict(good, features=np.full((3, 8), np.nan, np.float32)),
        'probs': dict(good, cls_prob=np.ones((1, 4), np.float32)),
    }
    np.savez(tmp_path / 'img.npz', **good)
    out = LoadRegionFeatures(str(tmp_path))(dict(img_path='x/img.jpg'))
    assert out['region_locs'][0].tolist() == [0, 0, 0.5, 0.5, 0.25]
    for name, arrays in bad.items():
        path = tmp_path / f'{name}.npz'
        np.savez(path, **arrays)
        with pytest.raises(RegionFileError) as e:
            load_region_features(str(path))
        assert str(path) in str(e.value) and '\n' not in str(e.value)
        with pytest.raises(RegionFileError):
            LoadRegionFeatures(str(tmp_path))(dict(img_path=f'{name}.jpg'))


def _png(path, seed, hw=(48, 40)):
    """A random colour PNG at ``path`` (str or bytes)."""
    rng = np.random.RandomState(seed)
    ok, data = cv2.imencode('.png',
                            rng.randint(0, 256, hw + (3, )).astype(np.uint8))
    with open(path, 'wb') as f:
        f.write(data.tobytes())


def test_image_ids_unique_and_stable():
    from mmext.apis.region_files import MAX_ID_BYTES
    ids = assign_image_ids(
        ['d/same.jpg', 'd/same.png', 'd/x.jpg', 'e/same.jpg.png'])
    # same.jpg.png's stem is 'same.jpg': the clash moves to the digest
    assert ids[1:3] == ['same.png', 'x'] and ids[3] == 'same.jpg'
    assert ids[0].startswith('same.jpg~') and len(ids[0]) == 17
    # names that differ only in case would merge on macOS / Windows
    case = assign_image_ids(['A.jpg', 'a.jpg', 'b.jpg'])
    assert len({i.casefold() for i in case}) == 3 and case[2] == 'b'
    # the same name in two folders; ids do not depend on order
    two = assign_image_ids(['p/img.jpg', 'q/img.jpg'])
    assert len(set(two)) == 2
    assert assign_image_ids(['q/img.jpg', 'p/img.jpg']) == two[::-1]
    long = assign_image_ids(['é' * 200 + '.jpg'])[0]
    assert len(long.encode()) <= MAX_ID_BYTES and '~' in long
    with pytest.raises(ValueError, match='listed twice'):
        assign_image_ids(['a.jpg', 'b.jpg', 'a.jpg'])


def test_same_stem_gets_two_outputs(workspace, tmp_path):
    model, _ = init_butd_detector(
        str(workspace / 'butd_tiny.py'), str(workspace / 'butd_tiny.pth'))
    images = tmp_path / 'images'
    images.mkdir()
    _png(images / 'same.png', 1)
    cv2.imwrite(
        str(images / 'same.jpg'),
        cv2.imread(str(images / 'same.png'))[::-1])
    _png(images / 'other.png', 2)
    out = tmp_path / 'out'
    summary = extract_regions(
        model,
        list_images(str(images)),
        str(out), ('npz', 'tsv'),
        SELECT,
        progress=False)
    assert summary['done'] == 3
    assert sorted(p.name for p in out.glob('*.npz')) == [
        'other.npz', 'same.jpg.npz', 'same.png.npz'
    ]
    a = load_region_features(str(out / 'same.jpg.npz'))
    b = load_region_features(str(out / 'same.png.npz'))
    assert (a['image_id'], b['image_id']) == ('same.jpg', 'same.png')
    assert not np.array_equal(a['features'], b['features'])
    with open(out / 'image_ids.csv', newline='', encoding='utf-8') as f:
        rows = {r['image_id']: r['image_path'] for r in csv.DictReader(f)}
    assert rows == {
        'other': str(images / 'other.png'),
        'same.jpg': str(images / 'same.jpg'),
        'same.png': str(images / 'same.png')
    }
    tsv_ids = [
        r['image_id']
        for r in iter_tsv_regions(str(out / 'regions_rank0.tsv'))
    ]
    assert sorted(tsv_ids) == ['other', 'same.jpg', 'same.png']


HOSTILE = (b'tab\there.png', b'new\nline.png', b'back\\slash.png',
           b'"quoted.png', b'\xff\xfe-latin1.png', b'#hash.png', b'-dash.png',
           b' spaced .png')


@pytest.mark.skipif(os.name != 'posix', reason='POSIX byte file names')
def test_hostile_names_round_trip_tsv_and_resume(workspace, tmp_path):
    """TSV write -> read -> resume with tabs, newlines, quotes and
    undecodable bytes in image names; a damaged line is moved aside."""
    model, _ = init_butd_detector(
        str(workspace / 'butd_tiny.py'), str(workspace / 'butd_tiny.pth'))
    images = tmp_path / 'images'
    images.mkdir()
    for k, name in enumerate(HOSTILE):
        _png(os.path.join(os.fsencode(images), name), k)
    paths = list_images(str(images))
    assert len(paths) == len(HOSTILE)
    want = {os.fsdecode(n[:-4]) for n in HOSTILE}
    out = tmp_path / 'out'
    first = extract_regions(
        model, paths, str(out), ('npz', 'tsv'), SELECT, progress=False)
    assert first['done'] == len(HOSTILE) and not first['failed']
    tsv = out / 'regions_rank0.tsv'
    assert tsv.read_bytes().count(b'\n') == len(HOSTILE)
    rows = list(iter_tsv_regions(str(tsv)))
    assert {unescape_path(r['image_id']) for r in rows} == want
    npz_ids = {
        str(load_region_features(str(p))['image_id'])
        for p in out.glob('*.npz')
    }
    assert npz_ids == want
    quoted = load_region_features(str(tsv), image_id=tsv_image_id('"quoted'))
    assert quoted['image_id'] == '\\x22quoted'
    with open(out / 'image_ids.csv', newline='', encoding='utf-8') as f:
        mapping = {
            unescape_path(r['image_id']): unescape_path(r['image_path'])
            for r in csv.DictReader(f)
        }
    assert mapping == {
        os.fsdecode(n[:-4]): os.fsdecode(os.path.join(os.fsencode(images), n))
        for n in HOSTILE
    }

    again = extract_regions(
        model, paths, str(out), ('npz', 'tsv'), SELECT, progress=False)
    assert (again['done'], again['skipped']) == (0, len(HOSTILE))

    # a damaged middle line: named, moved aside, that image redone
    lines = tsv.read_bytes().split(b'\n')[:-1]
    victim = lines[2].split(b'\t', 1)[0].decode()
    lines[2] = lines[2][:40] + b'\t?'
    tsv.write_bytes(b'\n'.join(lines) + b'\n')
    os.remove(out / (unescape_path(victim) + '.npz'))
    third = extract_regions(
        model, paths, str(out), ('npz', 'tsv'), SELECT, progress=False)
    assert third['done'] == 1 and third['damaged'][0][0] == 3
    assert 'not base64 of' in third['damaged'][0][1]
    damaged = (out / 'regions_rank0.tsv.damaged').read_bytes()
    assert damaged.startswith(b'# line 3: ') and b'\t?' in damaged
    rows = list(iter_tsv_regions(str(tsv)))  # parseable again
    assert sorted(r['image_id']
                  for r in rows) == sorted(tsv_image_id(i) for i in want)


def test_non_files_named_like_images_fail_with_reason(workspace, tmp_path):
    model, _ = init_butd_detector(
        str(workspace / 'butd_tiny.py'), str(workspace / 'butd_tiny.pth'))
    images = tmp_path / 'images'
    (images / 'folder.jpg').mkdir(parents=True)
    os.mkfifo(images / 'pipe.png')  # reading it must not block
    (images / 'gone.jpg').symlink_to(tmp_path / 'nowhere.jpg')
    _png(images / 'ok.png', 3)
    summary = extract_regions(
        model,
        list_images(str(images)),
        str(tmp_path / 'out'),
        select_cfg=SELECT,
        progress=False)
    assert summary['done'] == 1
    reasons = {os.path.basename(p): r for p, r in summary['failed']}
    assert 'a directory' in reasons['folder.jpg']
    assert 'a FIFO' in reasons['pipe.png']
    assert 'No such file' in reasons['gone.jpg']
    listed = (tmp_path / 'out' / 'failed_rank0.txt').read_text().splitlines()
    assert len(listed) == 3 and all(len(ln.split('\t')) == 2 for ln in listed)


SMOKE = ROOT / 'configs/butd/butd_faster-rcnn_tiny_random-init-smoke.py'


def test_random_init_smoke_run_without_weights(tmp_path):
    """The documented smoke run: no checkpoint anywhere, seconds."""
    import time
    images = tmp_path / 'images'
    images.mkdir()
    for k, hw in enumerate([(48, 64), (120, 90)]):
        _png(images / f'im{k}.png', k, hw)
    start = time.monotonic()
    proc = run_tool([
        TOOL, SMOKE, '--random-init', '--images', images, '--out',
        tmp_path / 'out', '--no-progress'
    ],
                    cwd=tmp_path,
                    env=dict(MMEXT_PRETRAIN_DIR=str(tmp_path)))
    seconds = time.monotonic() - start
    assert '2 extracted, 0 already done, 0 unreadable' in proc.stdout
    got = load_region_features(str(tmp_path / 'out' / 'im1.npz'))
    assert got['features'].shape == (36, 256)
    assert got['cls_prob'].shape == (36, 1601)
    rows = list(iter_tsv_regions(str(tmp_path / 'out' / 'regions_rank0.tsv')))
    assert sorted(r['image_id'] for r in rows) == ['im0', 'im1']
    print(f'smoke run (2 images, with imports): {seconds:.1f} s')
    assert seconds < 120  # ~10 s here with imports on a busy 2-core box


def test_missing_checkpoint_says_how_to_make_it(tmp_path):
    cfg = ROOT / 'configs/butd/butd_faster-rcnn_r101-caffe-c4_vg-36boxes.py'
    (tmp_path / 'images').mkdir()
    proc = run_tool(
        [TOOL, cfg, '--images', tmp_path / 'images', '--out', tmp_path],
        cwd=tmp_path,
        check=False,
        env=dict(MMEXT_PRETRAIN_DIR=str(tmp_path)))
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()[-1]
    assert err.startswith('extract_regions: checkpoint pretrain_pth/'
                          'butd_faster-rcnn_r101-caffe-c4_vg-iter320k.pth')
    assert 'resnet101_faster_rcnn_final_iter_320000.caffemodel' in err
    assert 'butd_caffe_to_mmext.py' in err and '--random-init' in err


def test_fewer_regions_than_a_fixed_count_warns(workspace, tmp_path):
    model, _ = init_butd_detector(
        str(workspace / 'butd_tiny.py'), str(workspace / 'butd_tiny.pth'))
    images = list_images(str(workspace / 'images'))[2:]
    fixed = dict(min_boxes=60, max_boxes=60)  # > post_nms_top_n=40
    with pytest.warns(UserWarning, match='fewer than min_boxes=60') as rec:
        summary = extract_regions(
            model, images, str(tmp_path), select_cfg=fixed, progress=False)
    msgs = [str(w.message) for w in rec if 'min_boxes' in str(w.message)]
    assert len(msgs) == 3 and 'img0.png: ' in msgs[0]
    for path, n in summary['few_regions']:
        got = load_region_features(
            str(tmp_path / (os.path.basename(path)[:-4] + '.npz')))
        assert got['num_boxes'] == n < 60 and f': {n} regions' in ''.join(
            m for m in msgs if os.path.basename(path) in m)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # enough proposals: no warning
        extract_regions(
            model,
            images,
            str(tmp_path / 'ok'),
            select_cfg=SELECT,
            progress=False)
