# Copyright (c) mmext contributors. All rights reserved.
"""Hateful Memes, MM-IMDb and UPMC Food-101 on generated data in the real
layouts: contents, repeated ids, malformed records, missing images."""
import csv
import json
import os

import pytest
import torch

from mmext.datasets import HatefulMemes, MMIMDb, RecordError, UPMCFood101
from mmext.datasets.mmimdb import MMIMDB_GENRES
from mmext.evaluation.metrics.multimodal import MultiLabelClassificationMetric
from mmext.testing import make_hateful_memes, make_mmimdb, make_upmc_food101

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs', algorithm_keys=['text', 'id'])
]


def _jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def _write_jsonl(path, records, raw_lines=()):
    with open(path, 'w') as f:
        for rec in records:
            f.write(json.dumps(rec) + '\n')
        for line in raw_lines:
            f.write(line + '\n')


# ------------------------------------------------------------ Hateful Memes
@pytest.fixture()
def hm_root(tmp_path):
    return make_hateful_memes(tmp_path / 'hm')


def test_hateful_memes_reads_the_challenge_layout(hm_root):
    ds = HatefulMemes(str(hm_root), split='train', pipeline=PIPELINE)
    expected = _jsonl(hm_root / 'train.jsonl')
    assert len(ds) == len(expected) == 16
    for i, rec in enumerate(expected):
        info = ds.get_data_info(i)
        assert info['id'] == rec['id'] and info['text'] == rec['text']
        assert info['gt_label'] == rec['label']
        assert info['img_path'] == str(hm_root / rec['img'])
    out = ds[0]
    assert out['inputs'].shape == (3, 32, 32)
    assert out['data_samples'].gt_label.tolist() == [expected[0]['label']]
    assert out['data_samples'].text == expected[0]['text']
    assert ds.CLASSES == ('not hateful', 'hateful')


def test_hateful_memes_repeated_ids_across_dev_files(hm_root):
    # as in the release: dev_seen and dev_unseen share memes (2 here)
    split = ['dev_seen', 'dev_unseen']
    ds = HatefulMemes(str(hm_root), split=split)
    assert len(ds) == 10 and ds.num_duplicates == 2
    ids = [ds.get_data_info(i)['id'] for i in range(len(ds))]
    assert len(set(ids)) == 10
    assert len(HatefulMemes(str(hm_root), split=split,
                            on_duplicate='keep')) == 12
    with pytest.raises(
            RecordError,
            match=r"dev_unseen.jsonl:1: id '\d+' "
            r'repeats .*dev_seen.jsonl:1'):
        HatefulMemes(str(hm_root), split=split, on_duplicate='error')
    # the same id with another text is never merged
    recs = _jsonl(hm_root / 'dev_unseen.jsonl')
    recs[1]['text'] = 'something else'
    _write_jsonl(hm_root / 'dev_unseen.jsonl', recs)
    with pytest.raises(
            RecordError,
            match=r'dev_unseen.jsonl:2: .*differs '
            r'from .*dev_seen.jsonl:2'):
        HatefulMemes(str(hm_root), split=split)


def test_hateful_memes_unlabelled_test_file(tmp_path):
    root = make_hateful_memes(tmp_path / 'hm', test_labels=False)
    ds = HatefulMemes(str(root), split='test_unseen', pipeline=PIPELINE)
    assert len(ds) == 6 and 'gt_label' not in ds.get_data_info(0)
    assert 'gt_label' not in ds[0]['data_samples']
    recs = _jsonl(root / 'test_seen.jsonl')
    recs[0]['label'] = 1  # only some records labelled: refused
    _write_jsonl(root / 'test_seen.jsonl', recs)
    with pytest.raises(RecordError, match=r'test_seen.jsonl:2: no "label"'):
        HatefulMemes(str(root), split='test_seen')


@pytest.mark.parametrize('line, cause', [
    ('{"id": 7, "img": "img/01000.png", "text": "x", "label": 1',
     'not valid JSON'),
    ('{"id": 7, "img": "img/01000.png", "label": 1}', r"missing field\(s\) "
     r"\['text'\]"),
    ('{"id": 7, "img": "img/01000.png", "text": "x", "label": 2}',
     'label 2 is not 0 or 1'),
    ('{"id": 7, "img": "../../etc/passwd", "text": "x", "label": 0}',
     '"img" .* points outside'),
    ('{"id": 7, "img": "/etc/passwd", "text": "x", "label": 0}',
     '"img" .* points outside'),
])
def test_hateful_memes_malformed_line_names_file_and_line(
        hm_root, line, cause):
    recs = _jsonl(hm_root / 'train.jsonl')[:3]
    _write_jsonl(hm_root / 'train.jsonl', recs, [line])
    with pytest.raises(RecordError, match=f'train.jsonl:4: {cause}'):
        HatefulMemes(str(hm_root), split='train')


def test_hateful_memes_missing_images_counted_not_silent(hm_root):
    recs = _jsonl(hm_root / 'train.jsonl')
    os.remove(hm_root / recs[3]['img'])
    ds = HatefulMemes(str(hm_root), split='train')
    assert len(ds) == 15 and ds.num_missing == 1
    assert ds.missing[0][0] == recs[3]['id']
    with pytest.raises(FileNotFoundError, match='1 of 16 samples miss'):
        HatefulMemes(str(hm_root), split='train', on_missing='error')
    with pytest.raises(
            FileNotFoundError, match=r"no dev\.jsonl .*found "
            r"\['dev_seen'"):
        HatefulMemes(str(hm_root), split='dev')


# ---------------------------------------------------------------- MM-IMDb
@pytest.fixture()
def mm_root(tmp_path):
    return make_mmimdb(tmp_path / 'mmimdb')


def test_mmimdb_reads_official_layout(mm_root):
    splits = json.loads((mm_root / 'split.json').read_text())
    for split, key in (('train', 'train'), ('val', 'dev'), ('test', 'test')):
        ds = MMIMDb(str(mm_root), split=split)
        assert [ds.get_data_info(i)['id'] for i in range(len(ds))] == \
            splits[key]
    ds = MMIMDb(str(mm_root), split='train')
    assert len(ds.CLASSES) == 23
    meta = json.loads((mm_root / 'dataset' / '0100000.json').read_text())
    info = ds.get_data_info(0)
    assert 'News' in meta['genres']  # outside the 23: left out
    assert [MMIMDB_GENRES[i] for i in info['gt_label']
            ] == sorted(g for g in meta['genres'] if g != 'News')
    assert info['text'] == max(meta['plot'], key=len)
    first = MMIMDb(str(mm_root), split='train', plot='first')
    assert first.get_data_info(0)['text'] == meta['plot'][0]


def test_mmimdb_samples_feed_the_multilabel_metric(mm_root):
    ds = MMIMDb(str(mm_root), split='dev', pipeline=PIPELINE)
    metric = MultiLabelClassificationMetric(items=('f1-micro', ))
    samples = []
    for i in range(len(ds)):
        sample = ds[i]['data_samples']
        score = torch.zeros(23)
        score[sample.gt_label] = 0.9  # a perfect prediction
        samples.append(dict(pred_score=score, gt_label=sample.gt_label))
    metric.process(None, samples)
    assert metric.evaluate(len(ds)) == {'multi-label/f1-micro': 100.0}


def test_mmimdb_bad_records(mm_root):
    movie = mm_root / 'dataset' / '0100001.json'
    meta = json.loads(movie.read_text())
    movie.write_text(json.dumps(dict(meta, genres=['Drama', 'Dramma'])))
    with pytest.raises(
            RecordError,
            match=r"0100001.json \(id 0100001\): "
            r"unknown genre 'Dramma'"):
        MMIMDb(str(mm_root), split='train')
    movie.write_text(json.dumps(dict(meta, plot=[])))
    with pytest.raises(RecordError, match='0100001.json.*no "plot"'):
        MMIMDb(str(mm_root), split='train')
    movie.write_text('{"plot": ["x"], ')
    with pytest.raises(RecordError, match='0100001.json.*not valid JSON'):
        MMIMDb(str(mm_root), split='train')
    (mm_root / 'split.json').write_text(json.dumps({'train': ['../x']}))
    with pytest.raises(RecordError, match="train id '../x' is not a file"):
        MMIMDb(str(mm_root), split='train')
    with pytest.raises(
            RecordError, match=r"no key 'dev' \(found "
            r"\['train'\]\)"):
        MMIMDb(str(mm_root), split='dev')


def test_mmimdb_missing_files_counted(mm_root):
    os.remove(mm_root / 'dataset' / '0100002.jpeg')
    os.remove(mm_root / 'dataset' / '0100005.json')
    ds = MMIMDb(str(mm_root), split='train')
    assert len(ds) == 10 and ds.num_missing == 2
    assert sorted(i for i, _ in ds.missing) == ['0100002', '0100005']
    with pytest.raises(FileNotFoundError, match='2 of 12 samples miss'):
        MMIMDb(str(mm_root), split='train', on_missing='error')


# ---------------------------------------------------------------- Food-101
@pytest.fixture()
def food_root(tmp_path):
    return make_upmc_food101(tmp_path / 'upmc', num_classes=3)


def _csv_rows(path):
    with open(path, newline='') as f:
        return list(csv.reader(f))


def _write_csv(path, rows):
    with open(path, 'w', newline='') as f:
        csv.writer(f).writerows(rows)


def test_upmc_food101_reads_official_layout(food_root):
    ds = UPMCFood101(str(food_root), split='train', pipeline=PIPELINE)
    rows = _csv_rows(food_root / 'texts' / 'train_titles.csv')
    assert len(ds) == len(rows) == 12 and len(ds.CLASSES) == 101
    for i, (name, text, cls) in enumerate(rows):
        info = ds.get_data_info(i)
        assert ',' in text and info['text'] == text  # quoted commas
        assert info['gt_label'] == ds.CLASSES.index(cls)
        assert info['img_path'] == str(food_root / 'images' / 'train' / cls /
                                       name)
    assert ds[5]['inputs'].shape == (3, 32, 32)
    assert len(UPMCFood101(str(food_root), split='test')) == 6


@pytest.mark.parametrize('row, cause', [
    (['x.jpg', 'text'], '2 columns, 3 expected'),
    (['x.jpg', 'text', 'pizzza'], "unknown class 'pizzza'"),
    (['../../x.jpg', 'text', 'pizza'], "image name '../../x.jpg' is not"),
])
def test_upmc_food101_bad_rows_name_csv_and_line(food_root, row, cause):
    path = food_root / 'texts' / 'train_titles.csv'
    rows = _csv_rows(path)
    _write_csv(path, rows[:4] + [row] + rows[4:])
    with pytest.raises(RecordError, match=f'train_titles.csv:5: {cause}'):
        UPMCFood101(str(food_root), split='train')


def test_upmc_food101_missing_images_and_repeats(food_root):
    path = food_root / 'texts' / 'train_titles.csv'
    rows = _csv_rows(path)
    _write_csv(path, rows + [rows[0]])
    name, _, cls = rows[2]
    os.remove(food_root / 'images' / 'train' / cls / name)
    ds = UPMCFood101(str(food_root), split='train')
    assert len(ds) == 11 and ds.num_missing == 1 and ds.num_repeats == 1
    assert ds.missing[0][0] == f'{cls}/{name}'


def test_built_from_config_dicts_in_the_mmext_scope(tmp_path):
    from mmengine.registry import DefaultScope

    from mmext.registry import DATASETS
    from mmext.testing import make_conceptual_captions
    roots = dict(
        HatefulMemes=make_hateful_memes(tmp_path / 'hm'),
        MMIMDb=make_mmimdb(tmp_path / 'mm'),
        UPMCFood101=make_upmc_food101(tmp_path / 'food'),
        ConceptualCaptions=make_conceptual_captions(tmp_path / 'cc'))
    extra = dict(ConceptualCaptions=dict(ann_file='captions.tsv'))
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(24, 24)),
        dict(type='PackInputs', algorithm_keys=['text', 'id'])
    ]
    with DefaultScope.overwrite_default_scope('mmext'):
        for name, root in roots.items():
            ds = DATASETS.build(
                dict(
                    type=name,
                    data_root=str(root),
                    pipeline=pipeline,
                    lazy_init=True,
                    **extra.get(name, {})))
            assert type(ds).__name__ == name
            out = ds[1]
            assert out['inputs'].shape == (3, 24, 24)
            assert isinstance(out['data_samples'].text, str)
