# Copyright (c) mmext contributors. All rights reserved.
"""ExcludeImages: the exclude file and the perceptual-hash leakage guard."""
import os.path as osp

import pytest
from mmengine.dataset import DefaultSampler

from mmext.datasets import ExcludeImages, Flowers17, LeakageError
from mmext.registry import DATASETS
from mmext.testing import make_flowers17, make_flowers102
from tests.conftest import ROOT


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """Flowers-17 (4 per class) and Flowers-102 (3 per class) with 3
    Flowers-17 test images planted into the 102 training split."""
    root = tmp_path_factory.mktemp('flowers')
    f17 = make_flowers17(root / 'f17', per_class=4, size=48)
    test = Flowers17(str(f17), split='test')
    sources = [test.get_data_info(i)['img_path'] for i in (0, 7, 13)]
    planted = make_flowers102(
        root / 'f102', per_class=3, size=48, duplicates_of=sources)
    return root, planted


def _f102(root, split='train', **kwargs):
    return dict(
        type='Flowers102', data_root=str(root / 'f102'), split=split, **kwargs)


def _paths(ds):
    return [ds.get_data_info(i)['img_path'] for i in range(len(ds))]


def _rel(path):
    return 'jpg/' + osp.basename(path)


def test_exclude_file_drops_listed_images(data, tmp_path):
    root, _ = data
    full = DATASETS.build(_f102(root))
    paths = _paths(full)
    drop = [paths[3], paths[40], paths[77]]
    other_split = _paths(DATASETS.build(_f102(root, split='test')))[0]
    exclude = tmp_path / 'exclude.txt'
    exclude.write_text(
        '# written by hand\n'
        f'{_rel(drop[0])}\n\n'
        f'  ./{_rel(drop[1])}  \n'
        f'{_rel(drop[2])}\n'
        f'{_rel(drop[2])}\n'  # listed twice: dropped once
        f'{_rel(other_split)}\n',
        encoding='utf-8')
    ds = DATASETS.build(
        dict(
            type='ExcludeImages',
            dataset=_f102(root),
            exclude_file=str(exclude)))
    assert isinstance(ds, ExcludeImages)
    assert _paths(ds) == [p for p in paths if p not in drop]
    assert [p for p, _ in ds.excluded] == drop
    assert ds.metainfo['classes'] == full.metainfo['classes']
    assert ds.CLASSES[0] == 'pink primrose'
    # items come from the wrapped data set, labels intact
    kept = [i for i, p in enumerate(paths) if p not in drop]
    assert ds.get_data_info(5)['gt_label'] == full.get_data_info(
        kept[5])['gt_label']
    assert ds.get_gt_labels().tolist() == [
        full.get_data_info(i)['gt_label'] for i in kept
    ]


def test_exclude_unknown_entries(data, tmp_path):
    root, _ = data
    exclude = tmp_path / 'exclude.txt'
    exclude.write_text('jpg/image_99999.jpg\njpg\\image_00001.jpg\n'
                       'image_00002.jpg\n')
    with pytest.raises(ValueError) as e:
        ExcludeImages(_f102(root), exclude_file=str(exclude))
    msg = str(e.value)
    # the backslash entry is a valid path (normalised), the others are not
    assert '2 entries' in msg and 'jpg/image_99999.jpg' in msg
    assert 'image_00002.jpg' in msg and 'strict=False' in msg
    with pytest.warns(UserWarning, match='jpg/image_99999.jpg'):
        ds = ExcludeImages(
            _f102(root), exclude_file=str(exclude), strict=False)
    full = DATASETS.build(_f102(root))
    in_split = any(p.endswith('image_00001.jpg') for p in _paths(full))
    assert len(ds) == len(full) - int(in_split)


def test_missing_exclude_file_names_the_tool(data, tmp_path):
    root, _ = data
    with pytest.raises(FileNotFoundError, match='find_leakage.py'):
        ExcludeImages(_f102(root), exclude_file=str(tmp_path / 'no.txt'))


def test_lazy_init_and_default_sampler(data, tmp_path):
    root, planted = data
    exclude = tmp_path / 'exclude.txt'
    exclude.write_text('\n'.join(_rel(p.path) for p in planted))
    ds = DATASETS.build(
        dict(
            type='ExcludeImages',
            lazy_init=True,
            exclude_file=str(exclude),
            dataset=_f102(root, lazy_init=True)))
    assert not ds._fully_initialized and ds.excluded == []
    assert ds.metainfo['classes'][-1] == 'blackberry lily'  # before init
    sampler = DefaultSampler(ds, shuffle=True, seed=0)  # calls len()
    assert ds._fully_initialized
    assert len(ds) == 102 - len(planted)
    assert sorted(sampler) == list(range(len(ds)))
    seen = {osp.basename(ds.get_data_info(i)['img_path']) for i in sampler}
    assert not seen & {osp.basename(p.path) for p in planted}


def test_getitem_runs_the_pipeline(data, tmp_path):
    root, _ = data
    exclude = tmp_path / 'exclude.txt'
    exclude.write_text('')
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    ds = ExcludeImages(
        _f102(root, pipeline=pipeline), exclude_file=str(exclude))
    item = ds[2]
    assert item['inputs'].shape == (3, 48, 48)
    assert item['data_samples'].gt_label.item() == ds.get_data_info(
        2)['gt_label']


def _guard(root, **kwargs):
    return DATASETS.build(
        dict(
            type='ExcludeImages',
            dataset=_f102(root, split='trainval'),
            heldout=dict(
                type='Flowers17', data_root=str(root / 'f17'), split='test'),
            hash_cfg=dict(workers=0),
            **kwargs))


def test_leakage_guard_fails_on_planted_duplicates(data):
    root, planted = data
    with pytest.raises(LeakageError) as e:
        _guard(root)
    msg = str(e.value)
    assert f'{len(planted)} of 204 Flowers102 images' in msg
    for p in planted:
        assert f'{osp.basename(p.path)}~{osp.basename(p.source)}' in msg
    assert "on_leak='filter'" in msg


def test_leakage_guard_filter_drops_exactly_the_planted(data):
    root, planted = data
    full = _paths(DATASETS.build(_f102(root, split='trainval')))
    ds = _guard(root, on_leak='filter')
    leaked = {osp.abspath(p.path) for p in planted}
    assert {osp.abspath(p) for p, _ in ds.excluded} == leaked
    assert [p for p in full if osp.abspath(p) not in leaked] == _paths(ds)
    # the mirrored copy was matched through the flip variant
    flips = [p for p in planted if p.edit == 'flip']
    assert flips and all(
        any(
            osp.samefile(lk.query_path, f.path) and lk.variant == 'flipped'
            for lk in ds.leaks) for f in flips)


def test_leakage_guard_warn_keeps_all_and_clean_set_passes(data, tmp_path):
    root, planted = data
    ds = _guard(root, on_leak='warn')
    assert len(ds) == 204 and len(ds.leaks) == len(planted)
    # the validation split holds no planted copy: no error by default
    clean = DATASETS.build(
        dict(
            type='ExcludeImages',
            dataset=_f102(root, split='val'),
            heldout=dict(
                type='Flowers17', data_root=str(root / 'f17'), split='test'),
            hash_cfg=dict(workers=0)))
    assert len(clean) == 102 and clean.leaks == []


def test_exclude_file_then_guard(data, tmp_path):
    """An exclude file written from the leaks satisfies the guard."""
    root, planted = data
    exclude = tmp_path / 'exclude.txt'
    exclude.write_text('\n'.join(_rel(p.path) for p in planted) + '\n')
    ds = _guard(root, exclude_file=str(exclude))
    assert len(ds) == 204 - len(planted) and ds.leaks == []


def test_bad_on_leak():
    with pytest.raises(ValueError, match='on_leak must be one of'):
        ExcludeImages(dict(type='Flowers17', data_root='x'), on_leak='drop')


def test_refetch_stays_among_kept_images(data, tmp_path):
    """A pipeline that rejects an image (returns None) gets another kept
    image, never an excluded one (mmengine would draw from all)."""
    from mmcv.transforms import BaseTransform

    class Reject(BaseTransform):

        def __init__(self, name):
            self.name = name

        def transform(self, results):
            return None if results['img_path'].endswith(self.name) else \
                results

    root, _ = data
    paths = _paths(DATASETS.build(_f102(root)))
    keep = paths[:3]
    exclude = tmp_path / 'exclude.txt'
    exclude.write_text('\n'.join(_rel(p) for p in paths[3:]))
    pipeline = [Reject(osp.basename(keep[0]))]
    ds = ExcludeImages(
        _f102(root, pipeline=pipeline), exclude_file=str(exclude))
    assert len(ds) == 3
    got = {ds[0]['img_path'] for _ in range(5)}
    assert got and got <= set(keep[1:])


def test_leakage_guard_against_a_union_of_heldout_sets(data):
    root, planted = data

    def f17(split):
        return dict(type='Flowers17', data_root=str(root / 'f17'), split=split)

    def guard(heldout):
        return ExcludeImages(
            _f102(root, split='trainval'),
            heldout=heldout,
            on_leak='filter',
            hash_cfg=dict(workers=0))

    # the planted copies come from the test split: val alone finds none
    assert guard(f17('val')).leaks == []
    both = guard([f17('val'), f17('test')])
    assert len(both) == 204 - len(planted)
    assert {osp.basename(lk.ref_path)
            for lk in both.leaks} == {osp.basename(p.source)
                                      for p in planted}


def test_guard17_base_config(data, tmp_path):
    """configs/_base_/datasets/flowers102_guard17.py on generated data."""
    from mmengine.config import Config

    root, planted = data
    cfg = Config.fromfile(ROOT /
                          'configs/_base_/datasets/flowers102_guard17.py')
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.dataset.data_root = str(root / 'f102')
    for heldout in ds_cfg.heldout:
        heldout.data_root = str(root / 'f17')
    cache = tmp_path / 'cache' / 'hashes.sqlite'
    ds_cfg.hash_cfg.update(cache_file=str(cache), workers=0)
    with pytest.raises(LeakageError, match=f'{len(planted)} of 102'):
        DATASETS.build(ds_cfg.to_dict())
    assert cache.is_file()
    ds_cfg.on_leak = 'filter'
    ds = DATASETS.build(ds_cfg.to_dict())
    assert len(ds) == 102 - len(planted)
    assert ds.metainfo['classes'][0] == 'pink primrose'
