# Copyright (c) mmext contributors. All rights reserved.
"""The integrity rules of the image-text data sets (README "Bad input: data
sets and file names"), one test per rule: each bad file is refused when the
data set is built, with one line naming the file (and line / ids)."""
import csv
import json
import os
import re

import pytest

from mmext.datasets import (ConceptualCaptions, HatefulMemes, MMIMDb,
                            RecordError, SeededSplit, UPMCFood101)
from mmext.datasets import conceptual_captions as cc_module
from mmext.datasets import image_text
from mmext.datasets.image_text import MissingImagesError
from mmext.testing import (make_conceptual_captions, make_hateful_memes,
                           make_mmimdb, make_upmc_food101)
from mmext.testing.bert import make_bert_folder
from mmext.utils.fileio import InputFileError
from tests.conftest import ROOT, run_tool


def _raises(build, *patterns, error=RecordError):
    """Build, expect ``error`` with a one-line message matching every
    pattern; return the message."""
    with pytest.raises(error) as e:
        build()
    msg = str(e.value)
    assert '\n' not in msg, msg
    for pattern in patterns:
        assert re.search(pattern, msg), (pattern, msg)
    return msg


# ------------------------------------------------------------- fixtures
@pytest.fixture()
def hm(tmp_path):
    root = make_hateful_memes(tmp_path / 'hm', size=8)
    return root, lambda **kw: HatefulMemes(str(root), split='train', **kw)


@pytest.fixture()
def mm(tmp_path):
    root = make_mmimdb(tmp_path / 'mm', size=8)
    return root, lambda **kw: MMIMDb(str(root), split='train', **kw)


@pytest.fixture()
def food(tmp_path):
    root = make_upmc_food101(tmp_path / 'food', size=8)
    return root, lambda **kw: UPMCFood101(str(root), split='train', **kw)


@pytest.fixture()
def cc(tmp_path):
    root = make_conceptual_captions(tmp_path / 'cc', num=4, missing=0, size=8)
    return root, lambda **kw: ConceptualCaptions(
        str(root), ann_file='captions.tsv', **kw)


def _split(root):
    return json.loads((root / 'split.json').read_text())


def _write_split(root, splits):
    (root / 'split.json').write_text(json.dumps(splits))


ANNOTATION = dict(
    hm='train.jsonl',
    mm='split.json',
    food='texts/train_titles.csv',
    cc='captions.tsv')


# ------------------------------------------------- MM-IMDb split.json
def test_mmimdb_repeated_ids_in_a_split_are_refused(mm):
    root, build = mm
    splits = _split(root)
    splits['train'] += splits['train'][:3]  # 15 entries for 12 movies
    _write_split(root, splits)
    first = splits['train'][0]
    _raises(build, re.escape(str(root / 'split.json')),
            r"lists 3 ids more than once in 'train'", f"first \\['{first}'")


def test_mmimdb_ids_in_train_and_test_are_refused(mm):
    root, build = mm
    splits = _split(root)
    splits['test'] += splits['train'][5:12]  # test holds 7 train movies
    _write_split(root, splits)
    # any split is refused, not only the two that share ids
    for split in ('train', 'dev', 'test'):
        _raises(
            lambda: MMIMDb(str(root), split=split), 'split.json',
            r"7 ids are in both 'train' and 'test', first "
            rf"\['{splits['train'][5]}', .*\] and 2 more")


@pytest.mark.parametrize('value, cause', [
    ('0100000', r"'train' is a string '0100000', expected a list of ids"),
    ({
        'a': 1
    }, r"'train' is an object"),
    (['0100000', 1.5], r"'train' item 1 is a number 1.5, expected an id"),
    (['0100000', True], r"'train' item 1 is a boolean"),
    ([], r"lists no ids in 'train'"),
])
def test_mmimdb_split_values_must_be_lists_of_ids(mm, value, cause):
    root, build = mm
    _write_split(root, dict(_split(root), train=value))
    _raises(build, re.escape(str(root / 'split.json')), cause)


def test_mmimdb_integer_ids_are_read_as_strings(mm):
    root, build = mm
    splits = _split(root)
    splits['train'] = [int(i) for i in splits['train']]  # 100000 ...
    _write_split(root, splits)
    os.rename(root / 'dataset/0100000.json', root / 'dataset/100000.json')
    os.rename(root / 'dataset/0100000.jpeg', root / 'dataset/100000.jpeg')
    ds = build()
    assert ds.get_data_info(0)['id'] == '100000' and len(ds) == 1
    assert ds.num_missing == 11  # '100001' is no file: counted, named


# ------------------------------------------------------------ encodings
def _annotation_bytes(root, name):
    return (root / ANNOTATION[name]).read_bytes()


@pytest.mark.parametrize('name', ['hm', 'mm', 'food', 'cc'])
def test_utf16_with_bom_reads_like_utf8(name, request):
    root, build = request.getfixturevalue(name)
    expected = [build().get_data_info(i) for i in range(3)]
    text = _annotation_bytes(root, name).decode('utf-8')
    (root / ANNOTATION[name]).write_bytes(text.encode('utf-16'))  # BOM
    assert [build().get_data_info(i) for i in range(3)] == expected


@pytest.mark.parametrize('name', ['hm', 'mm', 'food', 'cc'])
def test_latin1_annotation_names_file_byte_and_line(name, request):
    root, build = request.getfixturevalue(name)
    data = _annotation_bytes(root, name)
    lines = data.split(b'\n')
    if name == 'mm':  # split.json is one line
        lines[0] = lines[0].replace(b'"', b'\xe9"', 1)
    else:
        lines[1] = b'caf\xe9 ' + lines[1]
    (root / ANNOTATION[name]).write_bytes(b'\n'.join(lines))
    line = 1 if name == 'mm' else 2
    _raises(build, re.escape(str(root / ANNOTATION[name])),
            rf'is not utf-8 text \(byte \d+, line {line}: invalid')


def test_mmimdb_movie_file_not_utf8(mm):
    root, build = mm
    path = root / 'dataset/0100003.json'
    path.write_bytes(path.read_bytes().replace(b'Movie', b'M\xf6vie'))
    _raises(build, re.escape(str(path)), r'byte \d+, line 1')


# ---------------------------------------------------------- size bounds
@pytest.mark.parametrize('name', ['hm', 'mm', 'food'])
def test_annotation_over_the_size_bound(name, request, monkeypatch):
    root, build = request.getfixturevalue(name)
    size = len(_annotation_bytes(root, name))
    monkeypatch.setattr(image_text, 'MAX_ANNOTATION_BYTES', size - 1)
    _raises(build, re.escape(str(root / ANNOTATION[name])),
            f'has {size} bytes, more than the limit of {size - 1}')


def test_cc_tsv_line_over_the_bound(cc, monkeypatch):
    root, build = cc
    monkeypatch.setattr(cc_module, 'MAX_TSV_LINE', 100)
    tsv = root / 'captions.tsv'
    lines = tsv.read_text().splitlines()
    tsv.write_text('\n'.join(lines[:2] + ['x' * 200 + '\thttp://a/b'] +
                             lines[2:]) + '\n')
    _raises(build, re.escape(f'{tsv}:3: line longer than 100 bytes'))


def _with_title(root, length):
    path = root / 'texts/train_titles.csv'
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    rows[2][1] = 'x' * length
    with open(path, 'w', newline='') as f:
        csv.writer(f).writerows(rows)
    return path


def test_csv_field_of_128_kib_loads(food):
    root, build = food
    _with_title(root, 128 << 10 | 1)  # over csv's default of 131072
    limit = csv.field_size_limit()
    assert len(build().get_data_info(2)['text']) == 128 << 10 | 1
    assert csv.field_size_limit() == limit  # restored


def test_csv_field_over_the_bound(food, monkeypatch):
    root, build = food
    monkeypatch.setattr(image_text, 'MAX_CSV_FIELD', 1000)
    path = _with_title(root, 1001)
    limit = csv.field_size_limit()
    _raises(build, re.escape(f'{path}:3: field larger than field limit'),
            'at most 1000 characters')
    assert csv.field_size_limit() == limit


# ------------------------------------------------------------- deep JSON
def test_deep_json_line_names_file_and_line(hm):
    root, build = hm
    with open(root / 'train.jsonl', 'a') as f:
        f.write('[' * 100000 + '\n')
    _raises(
        build,
        re.escape(f'{root / "train.jsonl"}:17: JSON nested '
                  'deeper than 64 levels'))


def test_deep_split_json(mm):
    root, build = mm
    (root / 'split.json').write_text('{"train":\n' + '[' * 5000 + ']' * 5000 +
                                     '}')
    _raises(build, re.escape(f'{root / "split.json"}:2: JSON nested'))


def test_huge_json_integer(hm):
    root, build = hm
    with open(root / 'train.jsonl', 'a') as f:
        f.write('{"id": ' + '9' * 5000 + '}\n')
    _raises(build, re.escape(f'{root / "train.jsonl"}:17: not valid JSON'))


# ------------------------------------------------------------ field types
@pytest.mark.parametrize('field, value, cause', [
    ('img', 5, r'field "img" is an integer 5, expected a relative image'),
    ('img', ['img/1.png'], r'field "img" is a list'),
    ('id', [1], r'field "id" is a list \[1\], expected a non-empty string'),
    ('text', None, r'field "text" is null, expected a string'),
    ('label', '1', r"label '1' is not 0 or 1"),
    ('img', 'img/\ud800.png', r'"img" .* is no valid file name'),
])
def test_hateful_memes_field_types(hm, field, value, cause):
    root, build = hm
    path = root / 'train.jsonl'
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[4][field] = value
    path.write_text(''.join(json.dumps(r) + '\n' for r in records))
    _raises(build, re.escape(f'{path}:5'), cause)


@pytest.mark.parametrize('meta, cause', [
    (dict(plot=5, genres=['Drama']), r'"plot" holds an integer 5; expected '
     'a list of strings'),
    (dict(plot=['a', 3], genres=['Drama']), r'"plot" holds an integer 3'),
    (dict(plot=['a'], genres=[1]), r'"genres" holds an integer 1; expected '
     'genre names'),
    (dict(plot=['a'], genres='Drama'), r'no "genres" list \(found a string'),
    ([1, 2], r'a list, expected an object with "plot"'),
])
def test_mmimdb_field_types(mm, meta, cause):
    root, build = mm
    path = root / 'dataset/0100004.json'
    path.write_text(json.dumps(meta))
    _raises(build, re.escape(f'{path} (id 0100004)'), cause)


# ------------------------------------------ empty files, no image at all
@pytest.mark.parametrize('name, pattern', [
    ('hm', 'train.jsonl has no records'),
    ('food', 'train_titles.csv has no records'),
    ('cc', 'captions.tsv has no records'),
    ('mm', 'not valid JSON'),
])
def test_empty_annotation_file(name, pattern, request):
    root, build = request.getfixturevalue(name)
    (root / ANNOTATION[name]).write_text('\n\n' if name != 'mm' else '')
    _raises(build, re.escape(str(root)), pattern)


@pytest.mark.parametrize('name, folder, first', [
    ('hm', 'img', r'img/01000\.png'),
    ('mm', 'dataset', r'dataset/0100000\.jpeg'),
    ('food', 'images/train/apple_pie', r'images/train/apple_pie/\w+\.jpg'),
    ('cc', 'images', r'images/\w+\.jpg'),
])
def test_no_image_exists(name, folder, first, request):
    root, build = request.getfixturevalue(name)
    for f in (root / folder).iterdir():
        if f.suffix in ('.png', '.jpeg', '.jpg'):
            f.unlink()
    if name == 'food':
        for f in (root / 'images/train').rglob('*.jpg'):
            f.unlink()
    # refused under either policy, and when the Runner calls full_init
    for kwargs in (dict(), dict(on_missing='error')):
        _raises(
            lambda: build(**kwargs),
            rf'0 of \d+ images exist under {re.escape(str(root))} \(first '
            rf'missing: {first}\): ',
            error=MissingImagesError)
    ds = build(lazy_init=True)
    _raises(ds.full_init, '0 of', error=MissingImagesError)


def test_some_images_missing_are_listed_not_silent(hm):
    root, build = hm
    os.remove(root / 'img/01003.png')
    ds = build()
    assert len(ds) == 15 and ds.missing == [
        ('01003', str(root / 'img/01003.png'))
    ]
    _raises(
        lambda: build(on_missing='error'),
        r"1 of 16 samples miss their file .*'01003' \(img/01003\.png\)",
        error=MissingImagesError)


def test_error_classes_are_mmext_value_errors():
    assert issubclass(RecordError, InputFileError)
    assert issubclass(MissingImagesError, RecordError)
    assert issubclass(MissingImagesError, FileNotFoundError)


def test_seeded_split_refuses_an_empty_part(food):
    root, _ = food
    cfg = dict(type='UPMCFood101', data_root=str(root), split='test')
    with pytest.raises(
            ValueError,
            match=r'val part of UPMCFood101 is empty '
            r'\(2 samples, ratio 0.8\)'):
        SeededSplit(dict(cfg, indices=2), part='val', ratio=0.8)


def test_train_refuses_leaking_split_before_the_first_iteration(tmp_path):
    """tools/train.py on an MM-IMDb split.json whose test holds a train
    movie: exit with the one-line error, no checkpoint."""
    root = make_mmimdb(tmp_path / 'data/tiny_mmimdb')
    make_bert_folder(root / 'bert')
    splits = _split(root)
    splits['test'].append(splits['train'][0])
    _write_split(root, splits)
    proc = run_tool([
        ROOT / 'tools/train.py', ROOT / 'configs/vilbert' /
        'vilbert-cls_tiny_1xb4-ft_tiny-mmimdb.py', '--work-dir', 'work'
    ],
                    cwd=tmp_path,
                    check=False,
                    timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (
        "MMIMDb: data/tiny_mmimdb/split.json: 1 ids are in both 'train' and "
        f"'test', first ['{splits['train'][0]}']") in out, out[-2000:]
    assert not list((tmp_path / 'work').rglob('*.pth'))
    assert 'Epoch(train)' not in out
