# Copyright (c) mmext contributors. All rights reserved.
"""tools/feature_extraction/regions_tsv_to_npz.py: released BUTD TSV rows
-> one .npz per image, resumable, hostile ids refused with the reason."""
import csv
import os

import numpy as np

from mmext.datasets.region_features import (TSV_FIELDS, load_region_features,
                                            tsv_row)
from mmext.datasets.region_tsv import RegionTSV, tsv_image_id
from mmext.dedup.textio import unescape_path
from ..conftest import ROOT, run_tool

TOOL = ROOT / 'tools' / 'feature_extraction' / 'regions_tsv_to_npz.py'


def record(image_id, seed, n=5, dims=16):
    rng = np.random.RandomState(seed)
    xy = rng.rand(n, 2).astype(np.float32) * 30
    return dict(
        image_id=image_id,
        image_w=64,
        image_h=48,
        boxes=np.concatenate([xy, xy + 5], 1),
        features=rng.rand(n, dims).astype(np.float32))


def write_tsv(path, rows):
    """generate_tsv.py's writer: csv.DictWriter, tab, its fieldnames."""
    with open(path, 'a', newline='') as f:
        writer = csv.DictWriter(f, delimiter='\t', fieldnames=TSV_FIELDS)
        for r in rows:
            writer.writerow(r if 'num_boxes' in r else tsv_row(r))


def test_round_trip_and_resume(tmp_path):
    recs = [record(i * 9, i) for i in range(1, 7)]
    write_tsv(tmp_path / 'a.tsv.0', recs[:4])
    write_tsv(tmp_path / 'a.tsv.1', recs[4:])
    out = tmp_path / 'npz'
    proc = run_tool([TOOL, tmp_path / 'a.tsv.*', '--out', out], cwd=tmp_path)
    assert '6 converted, 0 already done, 0 refused' in proc.stdout
    assert 'MiB (100%)' in proc.stderr  # progress
    tsv = RegionTSV(str(tmp_path / 'a.tsv.*'))
    for r in recs:
        got = load_region_features(str(out / f"{r['image_id']}.npz"))
        assert got['image_id'] == str(r['image_id'])
        np.testing.assert_array_equal(got['features'], r['features'])
        np.testing.assert_array_equal(got['boxes'], r['boxes'])
        np.testing.assert_array_equal(got['locations'],
                                      tsv.get(r['image_id'])['locations'])
        assert 'cls_prob' not in got
    os.remove(out / '18.npz')
    again = run_tool([
        TOOL, tmp_path / 'a.tsv.0', tmp_path / 'a.tsv.1', '--out', out,
        '--no-progress'
    ],
                     cwd=tmp_path)
    assert '1 converted, 5 already done, 0 refused' in again.stdout
    assert (out / '18.npz').is_file()
    assert not [p for p in out.iterdir() if '.tmp' in p.name]


def test_hostile_ids_refused_or_kept_with_reasons(tmp_path):
    odd = 'tab\tnew\nline "q"'  # escaped by mmext's extractor
    good = [record('fine', 1), record(tsv_image_id(odd), 2)]
    bad_ids = ['../evil', 'a/b', '', '.', 'é' * 150, 'fine']
    rows = good + [record(i, 3) for i in bad_ids]
    rows += [record('Fine', 4)]  # equals fine.npz ignoring case
    damaged = dict(tsv_row(record('broken', 5)), features='@@@@')
    big = record('huge', 6, n=40, dims=256)  # ~55 KB of base64
    write_tsv(tmp_path / 'x.tsv', rows + [damaged, big, record('last', 7)])
    out = tmp_path / 'out'
    proc = run_tool([
        TOOL, tmp_path / 'x.tsv', '--out', out, '--max-line-mib', '0.02',
        '--no-progress'
    ],
                    cwd=tmp_path)
    assert '3 converted, 0 already done, 9 refused' in proc.stdout
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        ['fine.npz', 'last.npz', odd + '.npz', 'refused_rows.tsv'])
    assert not (tmp_path / 'evil.npz').exists()
    assert load_region_features(str(out / (odd + '.npz')))['image_id'] == odd
    with open(out / 'refused_rows.tsv', newline='', encoding='utf-8') as f:
        listed = list(csv.DictReader(f, delimiter='\t'))
    reasons = {
        unescape_path(r['image_id']): r['reason']
        for r in listed if r['line'] != '11'
    }
    assert {int(r['line']) for r in listed} == set(range(3, 12))
    assert reasons['../evil'] == reasons['a/b'] == (
        'holds a path separator or NUL')
    assert reasons[''] == reasons['.'] == 'empty or a dot name'
    assert reasons['é' * 150] == 'longer than 200 UTF-8 bytes'
    assert reasons['fine'] == f"repeats the id of {tmp_path / 'x.tsv'} line 1"
    assert reasons['Fine'] == 'equals fine.npz ignoring case'
    assert reasons['broken'].startswith('line 10 is not a BUTD TSV row')
    long = [r for r in listed if r['line'] == '11'][0]
    assert long['reason'].startswith('line 11 is longer than max_line_bytes')
    # resuming keeps the refusals and converts nothing twice
    again = run_tool([
        TOOL, tmp_path / 'x.tsv', '--out', out, '--max-line-mib', '0.02',
        '--no-progress'
    ],
                     cwd=tmp_path)
    assert '0 converted, 3 already done, 9 refused' in again.stdout


def test_missing_input_is_one_line(tmp_path):
    proc = run_tool([TOOL, tmp_path / 'none*.tsv', '--out', tmp_path / 'o'],
                    cwd=tmp_path,
                    check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith('regions_tsv_to_npz: feature_file ')
    assert 'matches no file' in lines[-1]
    assert 'Traceback' not in proc.stderr
