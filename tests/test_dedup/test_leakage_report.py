# Copyright (c) mmext contributors. All rights reserved.
import numpy as np

from mmext.dedup import DuplicatePair, hash_to_hex, pack_bits
from mmext.dedup.hexcodec import hex_to_words
from mmext.dedup.leakage_report import write_contact_sheet
from mmext.dedup.textio import (read_exclude_file, relative_posix,
                                write_exclude_file)


def test_exclude_file_format(tmp_path):
    root = tmp_path / 'flowers102'
    paths = [root / 'jpg' / f'image_{i:05d}.jpg' for i in (42, 7, 42)]
    out = tmp_path / 'exclude.txt'
    rel = write_exclude_file(
        paths, out, data_root=root, comments=['cmd: x --y', 'two\nlines'])
    assert rel == ['jpg/image_00042.jpg', 'jpg/image_00007.jpg']
    text = out.read_bytes().decode('utf-8')
    assert text == ('# cmd: x --y\n# two\n# lines\n'
                    'jpg/image_00042.jpg\njpg/image_00007.jpg\n')
    out.write_text(text + '\n   \n# late comment\n')
    assert read_exclude_file(out) == rel


def test_exclude_file_escapes_ambiguous_names(tmp_path):
    # a leading '#' would read as a comment, a newline as two entries
    names = [tmp_path / '#odd.jpg', tmp_path / 'two\nlines.jpg']
    out = tmp_path / 'e.txt'
    write_exclude_file(names, out, data_root=tmp_path)
    assert out.read_text() == '\\#odd.jpg\ntwo\\nlines.jpg\n'
    assert read_exclude_file(out) == ['#odd.jpg', 'two\nlines.jpg']


def test_relative_posix(tmp_path):
    assert relative_posix(tmp_path / 'a' / 'b.jpg', tmp_path) == 'a/b.jpg'
    assert relative_posix('x/y.jpg', None) == 'x/y.jpg'


def test_pack_and_hex_round_trip():
    rng = np.random.default_rng(0)
    for n in (4, 36, 64, 144, 256):
        bits = rng.integers(0, 2, n).astype(bool)
        words = pack_bits(bits)
        assert words.shape == (-(-n // 64), )
        as_int = int(''.join('1' if b else '0' for b in bits), 2)
        hex_str = hash_to_hex(words, n)
        assert int(hex_str, 16) == as_int
        assert len(hex_str) == -(-n // 4)
        assert np.array_equal(hex_to_words(hex_str, n), words)


def test_contact_sheet_rows(tmp_path, photos):
    photos['coffee'].save(tmp_path / 'a.jpg')
    photos['china'].save(tmp_path / 'b.jpg')
    pairs = [
        DuplicatePair(
            str(tmp_path / 'a.jpg'), str(tmp_path / 'b.jpg'), k, 'original', 0,
            0) for k in range(5)
    ]
    h, w, _ = write_contact_sheet(
        pairs, tmp_path / 's.png', thumb_size=64, max_pairs=3)
    assert h == 24 + 3 * (64 + 8)
    empty = write_contact_sheet([], tmp_path / 'e.png', thumb_size=64)
    assert empty[0] == 24 + 64 + 8
