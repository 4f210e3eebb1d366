# Copyright (c) mmext contributors. All rights reserved.
"""Find training images that duplicate held-out images (test-set leakage).

Hashes both sets (perceptual hash, flip-aware, cached), finds every
train / held-out pair within a Hamming threshold and writes to --out-dir:
pairs.csv, pairs.json, report.html (self-contained), pairs.png (contact
sheet), exclude.txt (training images to drop, relative to the training
set's data_root) and skipped.csv. The six files are replaced together at
the end (a failed run leaves the previous ones intact); file names that
are not UTF-8 or hold a newline are escaped (mmext.dedup.textio). The
check itself is :func:`mmext.dedup.leakage.find_leakage`.

``--stage geometric`` adds a second stage after the hashes: ORB features
(cached), candidate pairs from an LSH index, RANSAC verification of a
similarity transform (mmext.dedup.geometric). It finds crops (>= 50 %
area), rotations (90°, a few degrees), borders / letterboxing and partial
overlaps, which perceptual hashes miss; its pairs join the outputs with a
``stage`` column, their evidence (inliers, overlap, transform) and a
picture with the matched region outlined in report.html.

``--decode fast`` decodes JPEGs at 1/2 - 1/8 scale in the DCT domain, luma
only (mmext.dedup.decode): hashing several times faster, hashes a few bits
off imagehash's (measured effect: mmext.dedup.search); the default
``--decode exact`` gives imagehash's hashes bit for bit.

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
import shlex
import sys

from mmengine.config import DictAction

from mmext.dedup import DECODE_MODES, METHODS
from mmext.dedup.leakage import STAGES, LeakageCheckError, find_leakage


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Find training images that duplicate held-out images.')
    parser.add_argument(
        '--train',
        required=True,
        help='training images: a folder or a config file')
    parser.add_argument(
        '--heldout',
        required=True,
        help='held-out (test/val) images: a folder or a '
        'config file')
    parser.add_argument(
        '--train-split',
        default='train_dataloader',
        help='dataloader of --train when it is a config')
    parser.add_argument(
        '--heldout-split',
        default='test_dataloader',
        help='dataloader of --heldout when it is a config')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--method', default='phash', choices=METHODS)
    parser.add_argument('--hash-size', type=int, default=8)
    parser.add_argument(
        '--threshold',
        type=int,
        default=None,
        help='max Hamming distance (default: measured per '
        'method, 10 for 64-bit phash)')
    parser.add_argument(
        '--no-flip', action='store_true', help='do not match mirrored copies')
    parser.add_argument(
        '--decode',
        default='exact',
        choices=DECODE_MODES,
        help='exact: imagehash-identical hashes; fast: JPEGs decoded '
        'downscaled in the DCT domain (several times faster, hashes a few '
        'bits off)')
    parser.add_argument(
        '--stage',
        default='hash',
        choices=STAGES,
        help='hash: perceptual hashes only; geometric: then local '
        'features + RANSAC for crops, rotations, borders, overlaps')
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument(
        '--cache',
        default=None,
        help='hash cache file (default: '
        '<out-dir>/hash_cache.sqlite)')
    parser.add_argument('--no-cache', action='store_true')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument(
        '--shard',
        default=None,
        help='i/n: only hash shard i (0-based) of n of both '
        'sets into <out-dir>/hashes, no search; auto: i/n '
        'from SLURM_ARRAY_TASK_ID/COUNT or RANK/WORLD_SIZE')
    parser.add_argument(
        '--merge',
        action='store_true',
        help='search the shards in <out-dir>/hashes instead '
        'of hashing')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of config inputs, e.g. '
        'train_dataloader.dataset.data_root=data/f102 (applied to both '
        '--train and --heldout when they are configs)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    command = shlex.join([sys.argv[0]] +
                         (sys.argv[1:] if argv is None else list(argv)))
    try:
        return find_leakage(
            args.train,
            args.heldout,
            args.out_dir,
            train_split=args.train_split,
            heldout_split=args.heldout_split,
            method=args.method,
            hash_size=args.hash_size,
            threshold=args.threshold,
            flip=not args.no_flip,
            workers=args.workers,
            cache_file=args.cache,
            use_cache=not args.no_cache,
            progress=not args.no_progress,
            shard=args.shard,
            merge=args.merge,
            cfg_options=args.cfg_options,
            stage=args.stage,
            command=command,
            decode=args.decode)
    except LeakageCheckError as e:
        raise SystemExit(f'find_leakage: {e}')


if __name__ == '__main__':
    main()
