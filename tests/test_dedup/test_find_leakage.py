# Copyright (c) mmext contributors. All rights reserved.
"""mmext.dedup.leakage.find_leakage and its CLI tools/dedup/find_leakage.py
end to end on planted folders / configs."""
import csv
import json
import os.path as osp
import re

import pytest
from PIL import Image

from mmext.dedup.leakage import LeakageCheckError, find_leakage
from mmext.dedup.textio import read_exclude_file
from tests.conftest import ROOT, run_tool

SCRIPT = osp.join(ROOT, 'tools', 'dedup', 'find_leakage.py')


def parse_exclude(path):
    """The exclude-file format, read independently of mmext."""
    lines = open(path, encoding='utf-8').read().split('\n')
    comments = [ln for ln in lines if ln.startswith('#')]
    paths = [ln for ln in lines if ln.strip() and not ln.startswith('#')]
    return comments, paths


def test_folders_end_to_end(planted, tmp_path, capsys):
    root17, root102 = planted['root17'], planted['root102']
    (root102 / 'jpg' / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0garbage')
    (root102 / 'sub').mkdir()
    Image.new('RGB', (30, 30), (5, 5, 5)).save(root102 / 'sub' / 'flat.png')
    out = tmp_path / 'leak'
    kwargs = dict(
        train=str(root102),
        heldout=str(root17 / 'jpg'),
        out_dir=str(out),
        workers=0,
        progress=False)
    meta = find_leakage(**kwargs)
    printed = capsys.readouterr().out
    n_train = len(planted['expected']) + 9  # planted + DISTINCT photos
    assert (f'{n_train} train / 10 held-out hashed, 2 skipped, '
            f'{len(planted["expected"])} pairs, {len(planted["expected"])} '
            'excluded') in printed

    comments, excluded = parse_exclude(out / 'exclude.txt')
    assert sorted(excluded) == sorted(planted['expected'])
    assert any('threshold 10' in c for c in comments)
    # a Python call records itself (the CLI its command line, see
    # test_script_runs_from_any_cwd)
    assert any(
        c.startswith(f'# command: find_leakage(train={str(root102)!r}')
        for c in comments)
    assert any(re.search(r'date: \d{4}-\d\d-\d\d', c) for c in comments)
    assert read_exclude_file(out / 'exclude.txt') == excluded

    with open(out / 'pairs.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(planted['expected'])
    variants = {
        osp.relpath(r['train_path'], root102).replace('\\', '/'): r['variant']
        for r in rows
    }
    assert variants == {
        k: 'flipped' if v[1] else 'original'
        for k, v in planted['expected'].items()
    }
    data = json.load(open(out / 'pairs.json'))
    assert data['meta']['pairs'] == len(rows) == len(data['pairs'])
    assert data['meta']['threshold'] == 10 == meta['threshold']

    html = (out / 'report.html').read_text()
    srcs = re.findall(r'src="([^"]*)"', html)
    assert len(srcs) == 2 * len(rows)
    assert all(s.startswith('data:image/jpeg;base64,') for s in srcs)

    sheet = Image.open(out / 'pairs.png')
    assert sheet.height > len(rows) * 128

    with open(out / 'skipped.csv', newline='') as f:
        skipped = {
            osp.basename(r['path']): r['reason']
            for r in csv.DictReader(f)
        }
    assert set(skipped) == {'broken.jpg', 'flat.png'}
    assert 'near-constant' in skipped['flat.png']

    # a re-run answers every file from the cache in out-dir
    find_leakage(**kwargs)
    assert f'cached {n_train + 2 + 10})' in capsys.readouterr().out


def test_configs_end_to_end(planted, tmp_path, capsys):
    """--train / --heldout as configs: the data set is built through the
    registry and exclude paths are relative to its data_root."""
    root17, root102 = planted['root17'], planted['root102']
    files102 = sorted(p.name for p in (root102 / 'jpg').iterdir())
    (root102 / 'train.txt').write_text(''.join(f'jpg/{n} 0\n'
                                               for n in files102))
    (root17 / 'test.txt').write_text(''.join(
        f'{p.name}\n' for p in sorted((root17 / 'jpg').iterdir())))
    cfg = tmp_path / 'leak_cfg.py'
    cfg.write_text(
        "default_scope = 'mmext'\n"
        "train_dataloader = dict(batch_size=2, dataset=dict(\n"
        f"    type='CustomDataset', data_root={str(root102)!r},\n"
        "    ann_file='train.txt',\n"
        "    pipeline=[dict(type='LoadImageFromFile')]))\n"
        "test_dataloader = dict(batch_size=2, dataset=dict(\n"
        f"    type='CustomDataset', data_root={str(root17)!r},\n"
        "    data_prefix='jpg', ann_file='test.txt', with_label=False,\n"
        "    pipeline=[]))\n")
    out = tmp_path / 'leak_cfg_out'
    find_leakage(
        str(cfg),
        str(cfg),
        str(out),
        workers=0,
        progress=False,
        use_cache=False)
    assert '16 train / 10 held-out hashed' in capsys.readouterr().out
    _, excluded = parse_exclude(out / 'exclude.txt')
    assert sorted(excluded) == sorted(planted['expected'])
    assert not (out / 'hash_cache.sqlite').exists()


def test_missing_split_names_the_fix(planted, tmp_path):
    cfg = tmp_path / 'c.py'
    cfg.write_text("train_dataloader = dict(dataset=dict(type='X'))\n")
    try:
        find_leakage(
            str(cfg),
            str(planted['root17']),
            str(tmp_path / 'o'),
            train_split='val_dataloader')
    except KeyError as e:
        assert "no 'val_dataloader'" in str(e)
        assert 'train_dataloader' in str(e)
    else:
        raise AssertionError('a missing split must raise')


def test_script_runs_from_any_cwd(planted, tmp_path):
    out = tmp_path / 'o'
    proc = run_tool([
        SCRIPT, '--train', planted['root102'], '--heldout', planted['root17'],
        '--out-dir', out, '--no-progress', '--no-flip', '--workers', '1'
    ],
                    cwd=tmp_path,
                    timeout=300)
    # without flip-aware matching the two mirrored copies are missed
    unflipped = sum(not v[1] for v in planted['expected'].values())
    assert f'{unflipped} pairs, {unflipped} excluded' in proc.stdout
    assert (out / 'exclude.txt').exists() and (out / 'pairs.png').exists()
    comments, _ = parse_exclude(out / 'exclude.txt')
    assert any('command:' in c and '--train' in c for c in comments)
    assert any(f'command: {SCRIPT} --train {planted["root102"]}' in c
               for c in comments)


def test_flowers_configs_to_exclude_images(tmp_path, capsys):
    """The real use: the repo's Flowers-102 / Flowers-17 base configs on
    generated look-alikes with Flowers-17 test images planted into 102's
    training split; the exclude file written here makes ExcludeImages drop
    exactly the planted images."""
    from mmext.datasets import ExcludeImages, Flowers17
    from mmext.testing.flowers import make_flowers17, make_flowers102
    root17 = make_flowers17(tmp_path / 'f17', per_class=4, size=64)
    test17 = Flowers17(str(root17), split='test')
    sources = [test17.get_data_info(i)['img_path'] for i in (0, 5, 9)]
    planted = make_flowers102(
        tmp_path / 'f102', per_class=4, size=64, duplicates_of=sources)
    out = tmp_path / 'leak'
    find_leakage(
        osp.join(ROOT, 'configs/_base_/datasets/flowers102.py'),
        osp.join(ROOT, 'configs/_base_/datasets/flowers17.py'),
        str(out),
        workers=0,
        progress=False,
        cfg_options={
            'train_dataloader.dataset.data_root': str(tmp_path / 'f102'),
            'test_dataloader.dataset.data_root': str(root17)
        })
    assert f'{len(planted)} pairs, {len(planted)} excluded' in \
        capsys.readouterr().out
    _, excluded = parse_exclude(out / 'exclude.txt')
    want = sorted(
        osp.relpath(p.path, tmp_path / 'f102').replace('\\', '/')
        for p in planted)
    assert sorted(excluded) == want
    ds = ExcludeImages(
        dataset=dict(
            type='Flowers102', data_root=str(tmp_path / 'f102'),
            split='train'),
        exclude_file=str(out / 'exclude.txt'))
    assert sorted(osp.basename(p) for p, _ in ds.excluded) == sorted(
        osp.basename(w) for w in want)


def test_refusals_name_the_fix(planted, tmp_path):
    """Bad run settings are refused before anything is written; the CLI
    exits 1 with a one-line message."""
    out = tmp_path / 'o'
    common = dict(
        train=str(planted['root102']),
        heldout=str(planted['root17']),
        out_dir=str(out))
    with pytest.raises(LeakageCheckError, match='separate steps'):
        find_leakage(**common, shard='0/2', merge=True)
    with pytest.raises(LeakageCheckError, match='expected i/n'):
        find_leakage(**common, shard='2/2')
    assert not out.exists()
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(
            LeakageCheckError, match=f'no images found in {empty} '):
        find_leakage(str(empty), str(planted['root17']), str(out))
    proc = run_tool([
        SCRIPT, '--train', planted['root102'], '--heldout', planted['root17'],
        '--out-dir', out, '--shard', '0/2', '--merge'
    ],
                    cwd=tmp_path,
                    check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        'find_leakage: --shard hashes one shard, --merge searches all of '
        'them: run them as separate steps')
