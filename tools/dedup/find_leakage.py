# Copyright (c) mmext contributors. All rights reserved.
"""Find training images that duplicate held-out images (test-set leakage).

Hashes both sets (perceptual hash, flip-aware, cached), finds every
train / held-out pair within a Hamming threshold and writes to --out-dir:
pairs.csv, pairs.json, report.html (self-contained), pairs.png (contact
sheet), exclude.txt (training images to drop, relative to the training
set's data_root) and skipped.csv. The six files are replaced together at
the end (a failed run leaves the previous ones intact); file names that
are not UTF-8 or hold a newline are escaped (mmext.dedup.textio).

Collections larger than one machine: run ``--shard i/n`` (or ``--shard
auto`` in a Slurm array / torchrun) for every i, each writing
<out-dir>/hashes/{train,heldout}.shard-i-of-n.npz, then once ``--merge`` to
search them and write the reports (job scripts: mmext/dedup/shards.py).

Examples:
    python tools/dedup/find_leakage.py --train data/flowers102/jpg \\
        --heldout data/flowers17/jpg --out-dir work_dirs/leak_102_vs_17
    python tools/dedup/find_leakage.py --train CONFIG_102.py \\
        --heldout CONFIG_17.py --heldout-split test_dataloader \\
        --out-dir work_dirs/leak
    mim run mmext find_leakage --train ... --heldout ... --out-dir ...
"""
import argparse
import datetime
import os
import os.path as osp
import shlex
import sys
import time

from mmengine.config import DictAction

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))
from mmext.dedup import (METHODS, default_threshold,  # noqa: E402
                         find_cross_set_duplicates, hash_images)
from mmext.dedup.inputs import resolve_image_set  # noqa: E402
from mmext.dedup.report import (LEAKAGE_OUTPUTS,  # noqa: E402
                                write_leakage_outputs)
from mmext.dedup.shards import (load_shards, parse_shard,  # noqa: E402
                                save_shard)
from mmext.dedup.textio import escape_path  # noqa: E402

NAMES = ('train', 'heldout')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Find training images that duplicate held-out images.')
    parser.add_argument('--train', required=True,
                        help='training images: a folder or a config file')
    parser.add_argument('--heldout', required=True,
                        help='held-out (test/val) images: a folder or a '
                        'config file')
    parser.add_argument('--train-split', default='train_dataloader',
                        help='dataloader of --train when it is a config')
    parser.add_argument('--heldout-split', default='test_dataloader',
                        help='dataloader of --heldout when it is a config')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--method', default='phash', choices=METHODS)
    parser.add_argument('--hash-size', type=int, default=8)
    parser.add_argument('--threshold', type=int, default=None,
                        help='max Hamming distance (default: measured per '
                        'method, 10 for 64-bit phash)')
    parser.add_argument('--no-flip', action='store_true',
                        help='do not match mirrored copies')
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--cache', default=None,
                        help='hash cache file (default: '
                        '<out-dir>/hash_cache.sqlite)')
    parser.add_argument('--no-cache', action='store_true')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--shard', default=None,
                        help='i/n: only hash shard i (0-based) of n of both '
                        'sets into <out-dir>/hashes, no search; auto: i/n '
                        'from SLURM_ARRAY_TASK_ID/COUNT or RANK/WORLD_SIZE')
    parser.add_argument('--merge', action='store_true',
                        help='search the shards in <out-dir>/hashes instead '
                        'of hashing')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of config inputs, e.g. '
        'train_dataloader.dataset.data_root=data/f102 (applied to both '
        '--train and --heldout when they are configs)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.shard and args.merge:
        raise SystemExit('find_leakage: --shard hashes one shard, --merge '
                         'searches all of them: run them as separate steps')
    try:
        shard = parse_shard(args.shard) if args.shard else None
    except ValueError as e:
        raise SystemExit(f'find_leakage: {e}')
    threshold = (default_threshold(args.method, args.hash_size)
                 if args.threshold is None else args.threshold)
    os.makedirs(args.out_dir, exist_ok=True)
    cache = None if args.no_cache else (
        args.cache or osp.join(args.out_dir, 'hash_cache.sqlite'))
    train_paths, train_root = resolve_image_set(args.train, args.train_split,
                                                args.cfg_options)
    held_paths, _ = resolve_image_set(args.heldout, args.heldout_split,
                                      args.cfg_options)
    if not train_paths or not held_paths:
        empty = args.train if not train_paths else args.heldout
        raise SystemExit(f'find_leakage: no images found in {empty} '
                         f'(extensions or split wrong?)')

    start = time.time()
    kwargs = dict(method=args.method, hash_size=args.hash_size,
                  flip=not args.no_flip, workers=args.workers,
                  cache_file=cache, progress=not args.no_progress)
    hash_dir = osp.join(args.out_dir, 'hashes')
    if shard is not None:
        for name, paths in zip(NAMES, (train_paths, held_paths)):
            out, res = save_shard(hash_dir, name, paths, *shard,
                                  lambda p: hash_images(p, **kwargs))
            print(f'{name} shard {shard[0]}/{shard[1]}: {len(res)} hashed, '
                  f'{len(res.skipped)} skipped -> {escape_path(out)}')
        return {'shard': list(shard)}
    if args.merge:
        try:
            train, held = (load_shards(hash_dir, name, paths)
                           for name, paths in zip(NAMES, (train_paths,
                                                          held_paths)))
        except ValueError as e:
            raise SystemExit(f'find_leakage: {e}')
        for res in (train, held):
            if (res.method, res.hash_size, res.flipped is not None) != (
                    args.method, args.hash_size, not args.no_flip):
                raise SystemExit(
                    f'find_leakage: the shards in {hash_dir} are '
                    f'{res.method} hash_size {res.hash_size} flip '
                    f'{res.flipped is not None}: pass the same --method, '
                    '--hash-size and --no-flip as the --shard runs')
    else:
        train = hash_images(train_paths, **kwargs)
        held = hash_images(held_paths, **kwargs)
    pairs = find_cross_set_duplicates(train, held, threshold=threshold,
                                      workers=args.workers)

    meta = {
        'command': shlex.join([sys.argv[0]] + (
            sys.argv[1:] if argv is None else list(argv))),
        'date': datetime.datetime.now().isoformat(timespec='seconds'),
        'method': args.method,
        'hash_size': args.hash_size,
        'threshold': threshold,
        'flip': not args.no_flip,
        'train': args.train,
        'heldout': args.heldout,
        'train_data_root': train_root,
        'train_hashed': len(train),
        'heldout_hashed': len(held),
        'skipped': len(train.skipped) + len(held.skipped),
        'pairs': len(pairs),
    }
    out = args.out_dir
    comments = [
        'Training images that duplicate held-out images (mmext '
        'find_leakage).',
        f'command: {meta["command"]}',
        f'date: {meta["date"]}',
        f'method: {args.method} hash_size {args.hash_size} threshold '
        f'{threshold} flip {not args.no_flip}',
        f'held-out: {args.heldout}',
        f'paths relative to: {train_root}',
    ]
    excluded = write_leakage_outputs(
        out, pairs, {'train': train.skipped, 'heldout': held.skipped}, meta,
        [p.query_path for p in pairs], train_root, comments, NAMES)
    num_skipped = meta['skipped']
    print(f'{len(train)} train / {len(held)} held-out hashed, '
          f'{num_skipped} skipped, {len(pairs)} pairs, {len(excluded)} '
          f'excluded (threshold {threshold}, {args.method}, '
          f'{time.time() - start:.1f} s; cached '
          f'{train.num_cached + held.num_cached})')
    shown = escape_path(out)
    if num_skipped:
        print(f'skipped files and reasons: {shown}/skipped.csv')
    print(f'outputs: {shown}/{{{",".join(LEAKAGE_OUTPUTS)}}}')
    return meta


if __name__ == '__main__':
    main()
