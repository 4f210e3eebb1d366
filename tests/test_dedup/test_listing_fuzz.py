# Copyright (c) mmext contributors. All rights reserved.
"""Fuzz: hostile file names (unicode, newlines, tabs, quotes, leading dashes,
undecodable bytes, 255-byte names) through the leakage check's listing,
hashing, ``skipped.csv`` and ``pairs.csv``: every name is either hashed or
skipped with a reason, and reads back exactly from both CSV files."""
import csv
import io
import os
import shutil
import tempfile

import numpy as np
import pytest
from PIL import Image

from mmext.dedup import hash_images
from mmext.dedup.inputs import IMAGE_EXTENSIONS, scan_image_folder
from mmext.dedup.leakage_report import write_pairs_csv, write_skipped_csv
from mmext.dedup.search import DuplicatePair
from mmext.dedup.textio import unescape_path

hypothesis = pytest.importorskip('hypothesis')
st = hypothesis.strategies

pytestmark = pytest.mark.skipif(
    os.name != 'posix', reason='POSIX byte file names')

# names are bytes on POSIX: anything but '/' and NUL, at most 255 of them
_TEXT = st.text(
    st.characters(blacklist_categories=('Cs', ), blacklist_characters='/\x00'),
    max_size=12)
_RAW = st.binary(max_size=12).map(
    lambda b: os.fsdecode(b.replace(b'/', b'_').replace(b'\x00', b'_')))
_PREFIX = st.sampled_from(
    ['', '-', '--', '"', "'", '#', ' ', '\t', '\n', '\\', '.', 'é', '日本'])
_LONG = st.integers(0, 250).map(lambda k: 'x' * k)
_EXT = st.sampled_from(IMAGE_EXTENSIONS).flatmap(lambda ext: st.sampled_from(
    [ext, ext.upper(), ext.title()]))


@st.composite
def file_names(draw):
    stem = draw(_PREFIX) + draw(st.one_of(_TEXT, _RAW, _LONG)) + draw(_TEXT)
    name = stem + draw(_EXT)
    raw = os.fsencode(name)
    if len(raw) > 255:  # NAME_MAX: keep the end (the extension)
        name = os.fsdecode(raw[-255:])
    return name


@pytest.fixture(scope='module')
def png_bytes():
    rng = np.random.RandomState(0)
    img = Image.fromarray(rng.randint(0, 256, (6, 6), np.uint8)).resize(
        (24, 24), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, 'PNG')  # any extension: Pillow reads the header
    return buf.getvalue()


def _read_csv(path):
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.DictReader(f))


# examples: the profile's (ci: 60, ~3 s on one core; fuzz-long: 2000)
@hypothesis.given(names=st.lists(file_names(), min_size=1, max_size=4))
def test_hostile_names_round_trip(names, png_bytes):
    tmp = tempfile.mkdtemp()
    try:
        folder = os.path.join(tmp, 'imgs')
        os.mkdir(folder)
        written = set()
        for name in names:
            path = os.path.join(folder, name)
            with open(path, 'wb') as f:
                f.write(png_bytes)
            written.add(path)
        listing = scan_image_folder(folder)
        skipped_paths = [p for p, _ in listing.skipped]
        # every image-named input used or listed, none twice
        assert sorted(listing.paths + skipped_paths) == sorted(written)
        assert all(os.path.basename(p).startswith('.') for p in skipped_paths)
        res = hash_images(listing.paths, workers=0, progress=False)
        assert len(res) + len(res.skipped) == len(listing.paths)

        pairs = [
            DuplicatePair(p, q, 0, 'original', i, j)
            for i, p in enumerate(res.paths) for j, q in enumerate(res.paths)
        ]
        write_pairs_csv(pairs, os.path.join(tmp, 'pairs.csv'),
                        ('train', 'heldout'))
        write_skipped_csv({'train': listing.skipped + res.skipped},
                          os.path.join(tmp, 'skipped.csv'))
        rows = _read_csv(os.path.join(tmp, 'pairs.csv'))
        assert [(unescape_path(r['train_path']),
                 unescape_path(r['heldout_path']))
                for r in rows] == [(p.query_path, p.ref_path) for p in pairs]
        rows = _read_csv(os.path.join(tmp, 'skipped.csv'))
        assert [(unescape_path(r['path']), unescape_path(r['reason']))
                for r in rows] == listing.skipped + res.skipped
    finally:
        shutil.rmtree(tmp)
