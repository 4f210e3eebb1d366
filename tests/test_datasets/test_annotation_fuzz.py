# Copyright (c) mmext contributors. All rights reserved.
"""Fuzz the annotation files of the image-text data sets: valid generated
files (Hateful Memes JSON lines, MM-IMDb split.json and movie JSON, UPMC
Food-101 CSV, Conceptual Captions TSV) are mutated (random bytes,
truncation, other encodings, wrong JSON types, deep nesting, odd CSV
cells) and each data set must either build correctly or raise a
:class:`RecordError` whose message is one line naming the file; never a
raw traceback type, a hang or a large allocation."""
import csv
import io
import json
import os.path as osp
import time
import tracemalloc

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from mmext.datasets import (ConceptualCaptions, HatefulMemes, MMIMDb,
                            RecordError, UPMCFood101, image_text)
from mmext.datasets.image_text import MissingImagesError
from mmext.testing import (make_conceptual_captions, make_hateful_memes,
                           make_mmimdb, make_upmc_food101)


def examples(n):
    """``n`` examples under the ci profile (60 by default), scaled up
    under HYPOTHESIS_PROFILE=fuzz-long."""
    return max(1, n * settings.default.max_examples // 60)


MAX_SECONDS = 5  # per build of a few-KB file: far above the real cost
MAX_PEAK = 16 << 20  # bytes allocated while building
# FAST_BUILD: serialize_data=False, as mmengine's serialization runs
# gc.collect() per build (0.7 s with torch loaded); every check under test
# runs before it

# --------------------------------------------------------------- strategies
SPECIAL_BYTES = st.sampled_from([
    b'\x00', b'\xff', b'\xfe\xff', b'\xc3', b'\xed\xa0\x80', b'"', b'\n',
    b'\r', b'\t', b',', b'[', b'{', b'}', b']', b'\\', b'\xef\xbb\xbf'
])
SPECIAL_TEXT = st.sampled_from([
    '', '\ud800', '../x', '/etc/passwd', 'a\\b', 'a\x00b', '.', '..',
    'img/../../x.png', 'x' * 300, '\u2028', 'é', 'img/01000.png'
])
SCALARS = st.none() | st.booleans() | st.integers(
    -2, 2) | st.integers() | st.floats(allow_nan=True) | st.text(
        max_size=12) | SPECIAL_TEXT
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(max_size=5), inner, max_size=3),
    max_leaves=8)
ENCODINGS = st.sampled_from([
    'utf-16', 'utf-16-le', 'utf-16-be', 'utf-32', 'utf-8-sig', 'latin-1',
    'cp1252'
])


@st.composite
def byte_mutations(draw, data):
    """Truncate, delete, insert or overwrite a few bytes."""
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(['truncate', 'delete', 'insert', 'set']))
        pos = draw(st.integers(0, len(data)))
        chunk = draw(SPECIAL_BYTES | st.binary(min_size=1, max_size=6))
        if kind == 'truncate':
            data = data[:pos]
        elif kind == 'delete':
            data = data[:pos] + data[pos + len(chunk):]
        elif kind == 'insert':
            data = data[:pos] + chunk + data[pos:]
        else:
            data = data[:pos] + chunk + data[pos + len(chunk):]
    return data


@st.composite
def re_encoded(draw, data):
    """The text with a non-ASCII character, in another encoding."""
    text = data.decode('utf-8')
    pos = draw(st.integers(0, len(text)))
    text = text[:pos] + draw(st.sampled_from(['é', 'ü', '€', ''])) + text[pos:]
    return text.encode(draw(ENCODINGS), 'replace')


def nested(value, depth):
    """JSON text of ``value`` inside ``depth`` lists (json.dumps itself
    recurses)."""
    return '[' * depth + json.dumps(value) + ']' * depth


# ---------------------------------------------------------------- checking
def build_or_refuse(build, path, root):
    """Build; a refusal must be a one-line RecordError naming ``path``
    (a MissingImagesError names the data root). Returns the data set or
    None."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        ds = build()
    except RecordError as e:
        msg = str(e)
        assert '\n' not in msg, msg
        named = str(root) if isinstance(e, MissingImagesError) else str(path)
        assert named in msg, (named, msg)
        ds = None
        event(f'refused: {type(e).__name__}')
    finally:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < MAX_SECONDS and peak < MAX_PEAK, (elapsed, peak)
    if ds is not None:  # built: every sample is whole and its image exists
        event('built')
        assert len(ds) > 0
        for i in range(len(ds)):
            info = ds.get_data_info(i)
            assert isinstance(info['text'], str)
            assert info['img_path'].startswith(str(root) + osp.sep)
            assert osp.isfile(info['img_path'])
    return ds


class Mutable:
    """One generated data set whose annotation file is rewritten per
    example and restored afterwards."""

    def __init__(self, root, rel, build):
        self.root, self.path, self.build = root, root / rel, build
        self.original = self.path.read_bytes()

    def check(self, data):
        self.path.write_bytes(data)
        try:
            return build_or_refuse(self.build, self.path, self.root)
        finally:
            self.path.write_bytes(self.original)


@pytest.fixture(scope='module')
def sets(tmp_path_factory):
    # a 1 MiB file bound: read_text_file reserves the bound up front
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(image_text, 'MAX_ANNOTATION_BYTES', 1 << 20)
        yield _make_sets(tmp_path_factory.mktemp('fuzz'))


def _make_sets(base):
    hm = make_hateful_memes(
        base / 'hm',
        sizes=dict(train=6, dev_seen=2, dev_unseen=2),
        dev_overlap=0,
        size=8)
    mm = make_mmimdb(base / 'mm', sizes=(4, 2, 2), size=8)
    food = make_upmc_food101(base / 'food', per_class=(2, 1), size=8)
    cc = make_conceptual_captions(base / 'cc', num=4, missing=1, size=8)
    fast = dict(serialize_data=False)  # see FAST_BUILD
    return dict(
        hm=Mutable(hm, 'train.jsonl',
                   lambda: HatefulMemes(str(hm), split='train', **fast)),
        mm=Mutable(mm, 'split.json',
                   lambda: MMIMDb(str(mm), split='train', **fast)),
        movie=Mutable(mm, 'dataset/0100001.json',
                      lambda: MMIMDb(str(mm), split='train', **fast)),
        food=Mutable(food, 'texts/train_titles.csv',
                     lambda: UPMCFood101(str(food), split='train', **fast)),
        cc=Mutable(
            cc, 'captions.tsv', lambda: ConceptualCaptions(
                str(cc), ann_file='captions.tsv', **fast)))


NAMES = ['hm', 'mm', 'movie', 'food', 'cc']


# ------------------------------------------------------------------- tests
@pytest.mark.parametrize('name', NAMES)
@settings(max_examples=examples(40))
@given(data=st.data())
def test_random_bytes_and_truncation(sets, name, data):
    target = sets[name]
    target.check(data.draw(byte_mutations(target.original)))


@pytest.mark.parametrize('name', NAMES)
@settings(max_examples=examples(15))
@given(data=st.data())
def test_other_encodings(sets, name, data):
    target = sets[name]
    target.check(data.draw(re_encoded(target.original)))


@settings(max_examples=examples(60))
@given(
    line=st.integers(0, 5),
    field=st.sampled_from(['id', 'img', 'text', 'label', 'extra', None]),
    value=JSON_VALUES,
    depth=st.sampled_from([0, 0, 1, 63, 64, 65, 3000]))
def test_hateful_memes_records(sets, line, field, value, depth):
    target = sets['hm']
    records = [json.loads(x) for x in target.original.splitlines()]
    if field is None:
        records[line] = value
    else:
        records[line][field] = value
    lines = [json.dumps(r) for r in records]
    lines[line] = nested(records[line], depth)
    target.check(''.join(x + '\n' for x in lines).encode())


@settings(max_examples=examples(60))
@given(
    key=st.sampled_from(['train', 'dev', 'test', 'other']),
    value=JSON_VALUES | st.lists(
        st.sampled_from(['0100000', '0100001', '0100004', 100002, '0100099']),
        max_size=6),
    whole=st.booleans(),
    depth=st.sampled_from([0, 0, 2, 65, 3000]))
def test_mmimdb_split_values(sets, key, value, whole, depth):
    target = sets['mm']
    splits = json.loads(target.original)
    splits[key] = '<value>'
    text = json.dumps(splits).replace('"<value>"', nested(value, depth))
    target.check((nested(value, depth) if whole else text).encode())


@settings(max_examples=examples(40))
@given(
    field=st.sampled_from(['plot', 'genres', 'title']),
    value=JSON_VALUES | st.lists(
        st.sampled_from(['Drama', 'News', 'Dramma', 'x', 3]), max_size=3),
    depth=st.sampled_from([0, 0, 1, 65]))
def test_mmimdb_movie_fields(sets, field, value, depth):
    target = sets['movie']
    meta = json.loads(target.original)
    meta[field] = '<value>'
    text = json.dumps(meta).replace('"<value>"', nested(value, depth))
    target.check(text.encode())


CELLS = st.text(max_size=8) | SPECIAL_TEXT | st.sampled_from([
    'apple_pie', 'baklava', 'pizza', 'apple_pie_0.jpg', '"', 'a,b', 'a\nb',
    'a\rb', 'x' * 2000
])


@settings(max_examples=examples(40))
@given(
    row=st.integers(0, 3),
    cells=st.lists(CELLS, max_size=4),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_NONE]))
def test_food101_rows(sets, row, cells, quoting):
    target = sets['food']
    rows = list(csv.reader(io.StringIO(target.original.decode())))
    rows[row] = cells
    out = io.StringIO()
    writer = csv.writer(
        out, quoting=quoting, escapechar='\\', lineterminator='\n')
    try:
        writer.writerows(rows)
    except csv.Error:  # QUOTE_NONE cannot write some cells
        return
    target.check(out.getvalue().encode('utf-8', 'surrogatepass'))


@settings(max_examples=examples(30))
@given(
    line=st.integers(0, 3),
    text=st.text(max_size=20) | SPECIAL_TEXT | st.sampled_from(
        ['\t', 'a\tb\tc', 'cap\t', '\thttp://x/y.jpg', 'a\rb\tc', 'x' * 2000]))
def test_conceptual_captions_lines(sets, line, text):
    target = sets['cc']
    lines = target.original.decode().split('\n')
    lines[line] = text
    target.check('\n'.join(lines).encode('utf-8', 'surrogatepass'))
