# Copyright (c) mmext contributors. All rights reserved.
"""Region extraction: CLI outputs, resuming, unreadable images, sharding,
and the npz / TSV region files ViLBERT reads."""
import base64
import os

import numpy as np
import pytest
import torch

from mmext.datasets.region_features import (RegionFileError,
                                            load_region_features,
                                            region_locations)
from mmext.models.detectors import BUTDFasterRCNN
from mmext.models.detectors.butd.extract import (extract_regions,
                                                 init_butd_detector,
                                                 list_images, regions_record)
from ..conftest import ROOT, run_tool

cv2 = pytest.importorskip('cv2')

TOOL = ROOT / 'tools' / 'feature_extraction' / 'extract_regions.py'
ARCH = dict(
    stage_blocks=(1, 1, 1, 1),
    base_channels=4,
    rpn_channels=8,
    num_classes=7,
    num_attributes=5,
    attr_embed_dims=3,
    attr_hidden=6)
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
