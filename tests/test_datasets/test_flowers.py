# Copyright (c) mmext contributors. All rights reserved.
"""Flowers-17 / Flowers-102 loaders on generated folders in the real
layouts: both .mat flavours, split sizes, labels, class order, errors."""
import hashlib
import os
import re

import numpy as np
import pytest
import scipy.io
from mmengine.config import Config
from mmpretrain.datasets import Flowers102 as UpstreamFlowers102

from mmext.apis.prepare import check_data_roots
from mmext.datasets import Flowers17, Flowers102
from mmext.registry import DATASETS
from mmext.testing import make_flowers17, make_flowers102
from mmext.testing.flowers import MAT_FLAVOURS

PER_CLASS = 4  # 2 train / 1 val / 1 test per class


@pytest.fixture(scope='module')
def f17(tmp_path_factory):
    return make_flowers17(
        tmp_path_factory.mktemp('f17'), per_class=PER_CLASS, size=24)


@pytest.fixture(scope='module')
def f102(tmp_path_factory):
    root = tmp_path_factory.mktemp('f102')
    make_flowers102(root, per_class=4, size=24)
    return root


def _index(path):
    return int(re.search(r'image_(\d+)\.jpg$', path).group(1))


def _infos(ds):
    return [ds.get_data_info(i) for i in range(len(ds))]


# ----------------------------------------------------------- generators
def test_make_flowers17_layout(f17):
    names = sorted(os.listdir(f17 / 'jpg'))
    assert names == [f'image_{i:04d}.jpg' for i in range(1, 17 * 4 + 1)]
    mat = scipy.io.loadmat(f17 / 'datasplits.mat')
    for split_id in (1, 2, 3):
        parts = [mat[f'{p}{split_id}'] for p in ('trn', 'val', 'tst')]
        assert all(p.shape[0] == 1 for p in parts)  # 1 x N rows, as real
        ids = np.concatenate([p.ravel() for p in parts])
        # each split id partitions all images
        assert sorted(ids.tolist()) == list(range(1, 17 * 4 + 1))
        # class-order rule: every class has 2 / 1 / 1 images per part
        for part, n in zip(parts, (2, 1, 1)):
            counts = np.bincount(
                (part.ravel().astype(int) - 1) // 4, minlength=17)
            assert counts.tolist() == [n] * 17
    # the three split ids differ (independent permutations)
    assert not np.array_equal(mat['trn1'], mat['trn2'])


def test_generators_are_deterministic(tmp_path):

    def digest(root):
        h = hashlib.sha1()
        for dirpath, _, files in sorted(os.walk(root)):
            for f in sorted(files):
                h.update(f.encode())
                h.update(open(os.path.join(dirpath, f), 'rb').read())
        return h.hexdigest()

    a = make_flowers17(tmp_path / 'a', per_class=3, size=16)
    b = make_flowers17(tmp_path / 'b', per_class=3, size=16)
    assert digest(a) == digest(b)


def test_make_flowers17_rejects_too_few(tmp_path):
    with pytest.raises(ValueError, match='per_class must be >= 3'):
        make_flowers17(tmp_path, per_class=2)


# ------------------------------------------------------------ Flowers17
@pytest.mark.parametrize('flavour', MAT_FLAVOURS)
def test_flowers17_reads_every_mat_flavour(tmp_path, flavour, f17):
    root = make_flowers17(
        tmp_path, per_class=PER_CLASS, size=24, mat_flavour=flavour)
    head = (root / 'datasplits.mat').read_bytes()[:128]
    if flavour == 'v4':
        assert not head.startswith(b'MATLAB 5.0')
    else:
        assert head.startswith(b'MATLAB 5.0')
    ref = Flowers17(str(f17), split='test', split_id=3)
    ds = Flowers17(str(root), split='test', split_id=3)
    strip = [(os.path.basename(d['img_path']), d['gt_label'])
             for d in _infos(ds)]
    assert strip == [(os.path.basename(d['img_path']), d['gt_label'])
                     for d in _infos(ref)]


def test_flowers17_splits_labels_and_classes(f17):
    mat = scipy.io.loadmat(f17 / 'datasplits.mat')
    for split_id in (1, 2, 3):
        sizes = {
            s: len(Flowers17(str(f17), split=s, split_id=split_id))
            for s in ('train', 'val', 'trainval', 'test')
        }
        assert sizes == {'train': 34, 'val': 17, 'trainval': 51, 'test': 17}
    ds = Flowers17(str(f17), split='trainval', split_id=2)
    infos = _infos(ds)
    # file order follows trn2 then val2, labels follow the class-order rule
    expected = np.concatenate([mat['trn2'].ravel(), mat['val2'].ravel()])
    assert [_index(d['img_path']) for d in infos] == expected.tolist()
    assert [d['gt_label'] for d in infos] == [(int(i) - 1) // PER_CLASS
                                              for i in expected]
    assert ds.CLASSES == ('Daffodil', 'Snowdrop', 'Lily Valley', 'Bluebell',
                          'Crocus', 'Iris', 'Tigerlily', 'Tulip', 'Fritillary',
                          'Sunflower', 'Daisy', "Colts' Foot", 'Dandelion',
                          'Cowslip', 'Buttercup', 'Windflower', 'Pansy')
    assert Flowers17(str(f17), split='test').test_mode


def test_flowers17_real_size_labels(f17):
    # images_per_class given explicitly: the real rule (i - 1) // 80
    ds = Flowers17(str(f17), split='train', images_per_class=PER_CLASS)
    assert all(d['gt_label'] == (_index(d['img_path']) - 1) // PER_CLASS
               for d in _infos(ds))


def test_flowers17_registered_and_lazy(f17):
    ds = DATASETS.build(
        dict(
            type='Flowers17', data_root=str(f17), split='val', lazy_init=True))
    assert not ds._fully_initialized
    assert len(ds) == 17


def _write_splits(root, **changes):
    mat = {
        k: v
        for k, v in scipy.io.loadmat(root / 'datasplits.mat').items()
        if not k.startswith('__')
    }
    for k, v in changes.items():
        if v is None:
            del mat[k]
        else:
            mat[k] = np.asarray(v, dtype=np.float64)[None]
    scipy.io.savemat(root / 'datasplits.mat', mat)


def test_flowers17_missing_key(tmp_path):
    root = make_flowers17(tmp_path, per_class=3, size=16)
    _write_splits(root, trn2=None)
    with pytest.raises(KeyError) as e:
        Flowers17(str(root), split='test', split_id=1)
    assert "datasplits.mat has no key 'trn2'" in str(e.value)
    assert 'trn1..3, val1..3, tst1..3' in str(e.value)


def test_flowers17_index_out_of_range(tmp_path):
    root = make_flowers17(tmp_path, per_class=3, size=16)
    _write_splits(root, tst1=[0, 5])
    with pytest.raises(
            ValueError,
            match=r"'tst1' has indices out of range "
            r'1\.\.51.*\[0\]'):
        Flowers17(str(root), split='test')
    _write_splits(root, tst1=[1, 200])
    with pytest.raises(ValueError, match=r'out of range 1\.\.51.*\[200\]'):
        Flowers17(str(root), split='test', images_per_class=3)
    # inferred class size: 200 is no multiple of 17
    with pytest.raises(ValueError, match='not a multiple of 17'):
        Flowers17(str(root), split='test')


def test_flowers17_non_integer_indices(tmp_path):
    root = make_flowers17(tmp_path, per_class=3, size=16)
    _write_splits(root, val1=[1.5, 2])
    with pytest.raises(ValueError, match="'val1' holds non-integer"):
        Flowers17(str(root), split='val')


def test_flowers17_missing_images_listed(tmp_path):
    root = make_flowers17(tmp_path, per_class=3, size=16)
    ds = Flowers17(str(root), split='train')
    gone = sorted(os.path.basename(d['img_path']) for d in _infos(ds))[:7]
    for name in gone:
        os.remove(root / 'jpg' / name)
    with pytest.raises(FileNotFoundError) as e:
        Flowers17(str(root), split='train')
    msg = str(e.value)
    assert f'7 of {len(ds)} images' in msg
    assert all(f'jpg/{n}' in msg for n in gone[:5])
    assert 'and 2 more' in msg and gone[5] not in msg
    # the other splits are intact and still load
    assert len(Flowers17(str(root), split='test')) == 17


def test_flowers17_missing_mat_and_bad_args(tmp_path):
    (tmp_path / 'jpg').mkdir()
    with pytest.raises(
            FileNotFoundError,
            match='(?s)no datasplits.mat.*'
            r'\n.*image_0001\.jpg'):
        Flowers17(str(tmp_path))
    with pytest.raises(ValueError, match='split_id must be 1, 2 or 3'):
        Flowers17(str(tmp_path), split_id=4)
    with pytest.raises(ValueError, match="split must be one of"):
        Flowers17(str(tmp_path), split='training')
    (tmp_path / 'datasplits.mat').write_bytes(b'\x89HDF\r\n' + bytes(200))
    with pytest.raises(ValueError, match='MAT v4/v5'):
        Flowers17(str(tmp_path))


def test_prepare_reports_flowers_layout(tmp_path):
    cfg = Config(
        dict(
            train_dataloader=dict(
                dataset=dict(
                    type='ExcludeImages',
                    exclude_file='x.txt',
                    dataset=dict(
                        type='Flowers17', data_root=str(tmp_path / 'none'))))))
    with pytest.raises(FileNotFoundError, match='datasplits.mat'):
        check_data_roots(cfg)


# ----------------------------------------------------------- Flowers102
def test_flowers102_matches_upstream_and_has_names(f102):
    labels = scipy.io.loadmat(f102 / 'imagelabels.mat')['labels'].ravel()
    assert labels.shape == (408, ) and labels.min() == 1
    assert labels.max() == 102
    for split in ('train', 'val', 'trainval', 'test'):
        ours = Flowers102(str(f102), split=split)
        theirs = UpstreamFlowers102(str(f102), split=split)
        assert [(d['img_path'], d['gt_label']) for d in _infos(ours)
                ] == [(d['img_path'], d['gt_label']) for d in _infos(theirs)]
    ds = Flowers102(str(f102), split='test')
    assert len(ds) == 204
    assert all(d['gt_label'] == labels[_index(d['img_path']) - 1] - 1
               for d in _infos(ds))
    assert len(ds.CLASSES) == 102
    assert ds.CLASSES[:3] == ('pink primrose', 'hard-leaved pocket orchid',
                              'canterbury bells')
    assert ds.CLASSES[59] == 'pink-yellow dahlia?'
    assert ds.CLASSES[-1] == 'blackberry lily'
    assert len(set(ds.CLASSES)) == 102
    # mmext's registry resolves the unprefixed type to the named subclass
    assert DATASETS.get('Flowers102') is Flowers102


def test_flowers102_v4_and_compressed(tmp_path):
    for flavour in ('v4', 'v5-compressed'):
        root = tmp_path / flavour
        make_flowers102(root, per_class=3, size=16, mat_flavour=flavour)
        assert len(Flowers102(str(root), split='train')) == 102


def test_flowers102_errors(tmp_path):
    root = tmp_path / 'f'
    make_flowers102(root, per_class=3, size=16)
    setid = {
        k: v
        for k, v in scipy.io.loadmat(root / 'setid.mat').items()
        if not k.startswith('__')
    }
    scipy.io.savemat(root / 'setid.mat',
                     {k: v
                      for k, v in setid.items() if k != 'valid'})
    with pytest.raises(
            KeyError,
            match="setid.mat has no key 'valid' "
            r'\(expected trnid, valid, tstid\)'):
        Flowers102(str(root), split='val')
    scipy.io.savemat(root / 'setid.mat',
                     dict(setid, tstid=np.array([[1, 9999]], dtype=np.uint16)))
    with pytest.raises(ValueError, match=r'out of range 1\.\.306.*9999'):
        Flowers102(str(root), split='test')
    scipy.io.savemat(root / 'setid.mat', setid)
    os.remove(root / 'jpg' / 'image_00001.jpg')
    with pytest.raises(
            FileNotFoundError,
            match=r'1 of \d+ images .*jpg/image_00001\.jpg'):
        Flowers102(
            str(root),
            split='trainval' if 1 in np.concatenate(
                [setid['trnid'].ravel(), setid['valid'].ravel()]) else 'test')
    os.remove(root / 'imagelabels.mat')
    with pytest.raises(FileNotFoundError, match='no imagelabels.mat'):
        Flowers102(str(root), split='train')
