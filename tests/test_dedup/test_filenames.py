# Copyright (c) mmext contributors. All rights reserved.
"""Any POSIX file name survives every dedup output; outputs are all-or-none;
non-regular files are reported, not opened."""
import csv
import json
import os
import random
import re

import pytest
from mmengine.dataset import BaseDataset

from mmext.datasets import ExcludeImages
from mmext.dedup import hash_images
from mmext.dedup import leakage_report as report_mod
from mmext.dedup.leakage_report import LEAKAGE_OUTPUTS, write_leakage_outputs
from mmext.dedup.search import DuplicatePair
from mmext.dedup.textio import (StagedFiles, atomic_write, escape_path,
                                read_exclude_file, unescape_path,
                                write_exclude_file)
from mmext.testing.flowers import flower_image
from tests.conftest import ROOT, run_tool

pytestmark = pytest.mark.skipif(
    os.name != 'posix', reason='POSIX byte file names')

# file names (bytes) that break naive text outputs
ODD = (b'#dup0.jpg', b'new\nline.jpg', b'\xff\xfe-latin1.jpg', b' spaced .jpg',
       b'back\\slash.jpg', b'caf\xe9/tab\there.jpg')


def fs(name):
    return os.fsdecode(name)


def test_escape_round_trips_any_name():
    rng = random.Random(0)
    alphabet = [bytes([b]) for b in range(1, 256) if b != ord('/')]
    names = [
        b''.join(rng.choices(alphabet, k=rng.randint(1, 12)))
        for _ in range(2000)
    ]
    names += list(ODD) + ['é日本.jpg'.encode(), b'\xc3', b'\\x41']
    for name in names:
        text = escape_path(fs(name))
        assert unescape_path(text) == fs(name), name
        text.encode('utf-8')  # valid UTF-8, no surrogates
        assert '\n' not in text and '\r' not in text
        assert not text.startswith('#') and text == text.strip()
    # identity for ordinary names, the documented escapes otherwise
    assert escape_path('jpg/image_00042.jpg') == 'jpg/image_00042.jpg'
    assert escape_path('é日本.jpg') == 'é日本.jpg'
    assert escape_path(fs(b'#a\nb\\c\xff ')) == r'\#a\nb\\c\xff\x20'
    # a hand-written Windows separator reads as '/'; bad hex is refused
    assert unescape_path(r'jpg\image_00001.jpg') == 'jpg/image_00001.jpg'
    with pytest.raises(ValueError, match=r"column 4.*two hex digits"):
        unescape_path(r'abc\xZZ.jpg')


def _odd_files(folder, names=ODD, size=48, start=0):
    """Write distinct synthetic photos (the ``start + k``-th for the
    ``k``-th name) under byte names; return their paths."""
    paths = []
    for k, name in enumerate(names, start):
        path = os.path.join(os.fsencode(folder), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        flower_image(k % 17, k, size).save(fs(path), quality=90)
        paths.append(fs(path))
    return paths


class _Folder(BaseDataset):
    """Every file under ``data_root`` (bytes-walked), label 0."""

    METAINFO = dict(classes=('x', ))

    def load_data_list(self):
        out = []
        for top, _, files in os.walk(os.fsencode(self.data_root)):
            out += [
                dict(img_path=fs(os.path.join(top, f)), gt_label=0)
                for f in sorted(files)
            ]
        return out


def test_exclude_file_round_trip_through_exclude_images(tmp_path):
    root = tmp_path / 'data'
    paths = _odd_files(root) + _odd_files(root, [b'plain.jpg'], start=9)
    out = tmp_path / 'exclude.txt'
    rel = write_exclude_file(
        paths[:-1], out, data_root=root, comments=['cmd ' + fs(b'\xff\n#')])
    text = out.read_bytes().decode('utf-8')  # valid UTF-8
    lines = text.splitlines()
    assert lines[:2] == ['# cmd \\xff', '# \\#']
    assert len(lines) == 2 + len(ODD)  # one line per name, newline or not
    assert read_exclude_file(out) == rel == [fs(n) for n in ODD]
    ds = ExcludeImages(_Folder(data_root=str(root)), exclude_file=str(out))
    assert sorted(p for p, _ in ds.excluded) == sorted(paths[:-1])
    assert [ds.get_data_info(i)['img_path']
            for i in range(len(ds))] == [paths[-1]]
    # raw (unescaped) non-UTF-8 bytes written by another tool work too
    raw = tmp_path / 'raw.txt'
    raw.write_bytes(b'\xff\xfe-latin1.jpg\n')
    assert read_exclude_file(raw) == [fs(b'\xff\xfe-latin1.jpg')]
    bad = tmp_path / 'bad.txt'
    bad.write_text('# ok\njpg/a.jpg\nab\\x4\n')
    with pytest.raises(ValueError, match=r'bad.txt line 3: bad escape'):
        ExcludeImages(_Folder(data_root=str(root)), exclude_file=str(bad))


def test_fifo_reported_not_opened(tmp_path):
    fifo = tmp_path / 'pipe.jpg'
    os.mkfifo(fifo)
    res = hash_images([str(fifo)], workers=0, progress=False)
    assert res.skipped == [(str(fifo), 'not a regular file (a FIFO)')]
    root = tmp_path / 'd'
    _odd_files(root, [b'a.jpg'])
    with pytest.raises(ValueError, match='pipe.jpg.*not a regular file'):
        ExcludeImages(_Folder(data_root=str(root)), exclude_file=str(fifo))


def test_cache_keys_non_utf8_names(tmp_path):
    paths = _odd_files(tmp_path / 'img')
    cache = str(tmp_path / 'c.sqlite')
    first = hash_images(paths, workers=0, progress=False, cache_file=cache)
    again = hash_images(paths, workers=0, progress=False, cache_file=cache)
    assert first.num_cached == 0 and again.num_cached == len(paths)
    assert again.paths == paths and (again.hashes == first.hashes).all()


def _outputs(folder):
    return {n: (folder / n).read_bytes() for n in LEAKAGE_OUTPUTS}


def test_failed_run_leaves_previous_outputs(tmp_path, monkeypatch):
    a, b = _odd_files(tmp_path / 'img', [b'a.jpg', b'b\xff.jpg'])
    pairs = [DuplicatePair(a, b, 3, 'original', 0, 0)]
    out = tmp_path / 'out'
    out.mkdir()
    write_leakage_outputs(
        str(out), pairs, {'train': []}, {'n': 1}, [a], str(tmp_path / 'img'))
    before = _outputs(out)

    def broken(*args, **kwargs):
        raise OSError('disk full')

    monkeypatch.setattr(report_mod, 'write_contact_sheet', broken)
    with pytest.raises(OSError, match='disk full'):
        write_leakage_outputs(
            str(out), pairs * 2, {'train': []}, {'n': 2}, [a, b],
            str(tmp_path / 'img'))
    assert _outputs(out) == before
    assert sorted(os.listdir(out)) == sorted(LEAKAGE_OUTPUTS)  # no tmp
    # a single file: complete or untouched
    with pytest.raises(RuntimeError):
        with atomic_write(out / 'pairs.csv') as f:
            f.write('half')
            raise RuntimeError
    assert (out / 'pairs.csv').read_bytes() == before['pairs.csv']
    with StagedFiles() as staged:
        open(staged.path(out / 'new.txt'), 'w').write('x')
        assert not (out / 'new.txt').exists()
    assert (out / 'new.txt').read_text() == 'x'


def test_find_leakage_cli_with_odd_names(tmp_path):
    """End to end: held-out images copied into the training folder under
    odd names, plus a FIFO; every output names them exactly."""
    held = tmp_path / 'held'
    sources = _odd_files(held, [f'h{k}.png'.encode() for k in range(len(ODD))])
    train = tmp_path / 'train'
    copies = _odd_files(train, ODD)  # the same images, re-encoded as JPEG
    _odd_files(train, [b'other1.jpg', b'other2.jpg'], start=len(ODD))
    os.mkfifo(train / 'pipe.jpg')
    out = tmp_path / fs(b'out\xff')  # the cache and outputs live here
    argv = [
        ROOT / 'tools/dedup/find_leakage.py', '--train', train, '--heldout',
        held, '--out-dir', out, '--workers', '0', '--no-progress', '--no-flip'
    ]
    proc = run_tool(argv, cwd=tmp_path, timeout=300)
    n = len(ODD)
    assert f'{n} pairs, {n} excluded' in proc.stdout
    assert '1 skipped' in proc.stdout
    assert f'outputs: {tmp_path}/out\\xff/{{pairs.csv,' in proc.stdout

    assert sorted(read_exclude_file(out / 'exclude.txt')) == sorted(
        fs(name) for name in ODD)
    ds = ExcludeImages(
        _Folder(data_root=str(train)), exclude_file=str(out / 'exclude.txt'))
    assert sorted(p for p, _ in ds.excluded) == sorted(copies)

    with open(out / 'pairs.csv', newline='', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    assert sorted(unescape_path(r['train_path'])
                  for r in rows) == sorted(copies)
    assert sorted(unescape_path(r['heldout_path'])
                  for r in rows) == sorted(sources)
    data = json.loads((out / 'pairs.json').read_bytes().decode('utf-8'))
    assert sorted(unescape_path(r['train_path']) for r in data['pairs']) == \
        sorted(copies)
    page = (out / 'report.html').read_bytes().decode('utf-8')
    assert 'train/\\xff\\xfe-latin1.jpg<' in page
    assert 'train/#dup0.jpg<' in page and 'new\\nline.jpg<' in page
    with open(out / 'skipped.csv', newline='', encoding='utf-8') as f:
        skipped = list(csv.DictReader(f))
    assert [(unescape_path(r['path']), r['reason']) for r in skipped
            ] == [(str(train / 'pipe.jpg'), 'not a regular file (a FIFO)')]
    assert not [n for n in os.listdir(out) if n.endswith('.tmp')]

    # the cache answers every file on a re-run (non-UTF-8 keys included;
    # the FIFO is left out by the folder listing, never hashed)
    proc = run_tool(argv, cwd=tmp_path, timeout=300)
    assert re.search(rf'cached {n + 2 + n}\)', proc.stdout), proc.stdout
