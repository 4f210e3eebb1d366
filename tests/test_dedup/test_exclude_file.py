# Copyright (c) mmext contributors. All rights reserved.
"""The exclude-file format: one reader, one writer (mmext.dedup.textio),
and ExcludeImages reads through the same reader."""
import os

import pytest

import mmext.datasets.dataset_wrappers as wrappers
from mmext.dedup import leakage_report as report
from mmext.dedup import textio
from mmext.dedup.textio import read_exclude_file, write_exclude_file


def test_one_reader_and_one_writer():
    """Every module that reads or writes the format uses textio's
    functions (no second parser to drift)."""
    assert wrappers.read_exclude_file is textio.read_exclude_file
    assert report.write_exclude_file is textio.write_exclude_file
    assert not hasattr(wrappers, '_parse_exclude_file')
    assert not hasattr(textio, 'write_exclude_lines')


def test_reader_rules(tmp_path):
    """Comments, blank lines, surrounding white space, CRLF line ends,
    escapes and hand-written Windows separators."""
    f = tmp_path / 'exclude.txt'
    f.write_bytes(b'# header\r\n'
                  b'\r\n'
                  b'  jpg/a.jpg  \r\n'
                  b'\t# indented comment\n'
                  b'jpg\\b.jpg\n'
                  b'\\#hash.jpg\n'
                  b'two\\nlines.jpg\n'
                  b'back\\\\slash.jpg\n'
                  b'\\x20lead.jpg\n'
                  b'raw-\xff.jpg')  # no final newline, undecodable byte
    assert read_exclude_file(f) == [
        'jpg/a.jpg', 'jpg/b.jpg', '#hash.jpg', 'two\nlines.jpg',
        'back\\slash.jpg', ' lead.jpg',
        os.fsdecode(b'raw-\xff.jpg')
    ]


def test_writer_round_trip(tmp_path):
    root = tmp_path / 'root'
    names = [
        '#a.jpg', 'b\nc.jpg', ' d.jpg', 'e\\f.jpg',
        os.fsdecode(b'g\xfe.jpg'), 'sub/h.jpg', '#a.jpg'
    ]
    out = tmp_path / 'x.txt'
    rel = write_exclude_file([root / n for n in names],
                             out,
                             root,
                             comments=['first', 'second\nthird'])
    assert rel == names[:-1]  # a repeated name is written once
    lines = out.read_bytes().decode('utf-8').split('\n')
    assert lines[:3] == ['# first', '# second', '# third']
    assert read_exclude_file(out) == rel


def test_reader_refuses_missing_and_special_files(tmp_path):
    with pytest.raises(
            FileNotFoundError,
            match=r"no\.txt' not found; tools/dedup/find_leak"):
        read_exclude_file(tmp_path / 'no.txt')
    with pytest.raises(ValueError, match='is not a regular file'):
        read_exclude_file(tmp_path)
    bad = tmp_path / 'bad.txt'
    bad.write_text('ok.jpg\nx\\x1\n')
    with pytest.raises(
            ValueError, match=r'bad\.txt line 2: bad escape .*column 2'):
        read_exclude_file(bad)
