# Copyright (c) mmext contributors. All rights reserved.
"""Sharded hashing: merged shards equal one process; bad shard sets are
refused; find_leakage --shard / --merge end to end."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mmext.dedup import hash_images
from mmext.dedup.shards import (load_shards, parse_shard, save_shard,
                                shard_file, shard_from_env)
from tests.conftest import ROOT, run_tool

SCRIPT = osp.join(ROOT, 'tools', 'dedup', 'find_leakage.py')


def hasher(**kwargs):
    return lambda paths: hash_images(
        paths, workers=0, progress=False, **kwargs)


@pytest.fixture
def files(tmp_path, photos):
    folder = tmp_path / 'imgs'
    folder.mkdir()
    paths = []
    for name in ('astronaut', 'coffee', 'brick', 'moon', 'chelsea', 'text',
                 'camera'):
        photos[name].save(folder / f'{name}.jpg')
        paths.append(str(folder / f'{name}.jpg'))
    Image.new('L', (20, 20), 9).save(folder / 'flat.png')
    (folder / 'empty.jpg').write_bytes(b'')
    odd = os.fsdecode(b'n\xe9w\nline.jpg')  # not UTF-8, with a newline
    photos['horse'].save(
        os.path.join(os.fsencode(folder), os.fsencode(odd)), 'JPEG')
    paths[3:3] = [
        str(folder / 'flat.png'),
        str(folder / 'empty.jpg'),
        osp.join(str(folder), odd)
    ]
    paths.append(paths[0])  # listed twice
    return paths


@pytest.mark.parametrize('n,flip', [(1, True), (3, True), (4, False)])
def test_merged_shards_equal_one_process(tmp_path, files, n, flip):
    one = hash_images(files, flip=flip, workers=0, progress=False)
    out = tmp_path / 'hashes'
    for i in range(n - 1, -1, -1):  # any order
        save_shard(str(out), 'train', files, i, n, hasher(flip=flip))
    merged = load_shards(str(out), 'train', files)
    assert merged.paths == one.paths and len(one) == 9
    assert np.array_equal(merged.hashes, one.hashes)
    if flip:
        assert np.array_equal(merged.flipped, one.flipped)
    else:
        assert merged.flipped is None
    assert merged.skipped == one.skipped and len(one.skipped) == 2
    assert (merged.method, merged.hash_size, merged.num_bits) == ('phash', 8,
                                                                  64)


def test_bad_shard_sets_refused(tmp_path, files):
    out = str(tmp_path / 'hashes')
    with pytest.raises(ValueError, match='no train.shard'):
        load_shards(out, 'train')
    save_shard(out, 'train', files, 0, 3, hasher())
    save_shard(out, 'train', files, 2, 3, hasher())
    with pytest.raises(ValueError, match=r'shards \[1\] of 3 are missing'):
        load_shards(out, 'train')
    save_shard(out, 'train', files, 1, 3, hasher(method='dhash'))
    with pytest.raises(ValueError, match='differ in method'):
        load_shards(out, 'train')
    save_shard(out, 'train', files, 1, 3, hasher())
    assert len(load_shards(out, 'train')) == 9
    with pytest.raises(ValueError, match='another list of 11 inputs'):
        load_shards(out, 'train', files[:-1])
    save_shard(out, 'train', files, 0, 2, hasher())
    with pytest.raises(ValueError, match='several runs'):
        load_shards(out, 'train')
    os.remove(shard_file(out, 'train', 0, 2))
    # a shard of another input list with the same count
    other = files[1:] + files[:1]
    save_shard(out, 'train', other, 1, 3, hasher())
    with pytest.raises(ValueError, match='differ in .*input list'):
        load_shards(out, 'train')


def test_shard_specs():
    assert parse_shard('2/5') == (2, 5)
    for bad in ('5/5', '-1/3', '1', 'a/b'):
        with pytest.raises(ValueError, match='i/n'):
            parse_shard(bad)
    assert shard_from_env({
        'SLURM_ARRAY_TASK_ID': '7',
        'SLURM_ARRAY_TASK_COUNT': '8',
        'RANK': '0',
        'WORLD_SIZE': '2'
    }) == (7, 8)
    assert shard_from_env({
        'SLURM_ARRAY_TASK_ID': '3',
        'SLURM_ARRAY_TASK_MIN': '1',
        'SLURM_ARRAY_TASK_COUNT': '4'
    }) == (2, 4)
    assert shard_from_env({'RANK': '1', 'WORLD_SIZE': '2'}) == (1, 2)
    with pytest.raises(ValueError, match='neither'):
        shard_from_env({})
    with pytest.raises(ValueError, match='out of range'):
        shard_from_env({
            'SLURM_ARRAY_TASK_ID': '4',
            'SLURM_ARRAY_TASK_COUNT': '4'
        })


def test_cli_shards_then_merge(planted, tmp_path):
    """Two shards (one by i/n, one from torchrun's environment), then the
    merge finds exactly the planted copies; a merge with another --method
    is refused."""
    root17, root102 = planted['root17'], planted['root102']
    out = tmp_path / 'leak'
    args = [
        SCRIPT, '--train',
        str(root102), '--heldout',
        str(root17 / 'jpg'), '--out-dir',
        str(out), '--workers', '0', '--no-progress'
    ]
    run_tool(args + ['--shard', '0/2'], cwd=ROOT)
    proc = run_tool(
        args + ['--shard', 'auto'],
        cwd=ROOT,
        env={
            'RANK': '1',
            'WORLD_SIZE': '2'
        })
    assert 'heldout shard 1/2: 5 hashed' in proc.stdout
    assert not (out / 'pairs.json').exists()
    run_tool(args + ['--merge'], cwd=ROOT)
    data = json.load(open(out / 'pairs.json'))
    found = {
        osp.relpath(p['train_path'], root102):
        (osp.basename(p['heldout_path']), p['variant'] == 'flipped')
        for p in data['pairs']
    }
    assert found == planted['expected']
    bad = run_tool(
        args + ['--merge', '--method', 'dhash'], cwd=ROOT, check=False)
    assert bad.returncode != 0
    assert 'pass the same --method' in bad.stderr
