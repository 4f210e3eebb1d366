# Copyright (c) mmext contributors. All rights reserved.
"""Extract BUTD region features of every image in a folder.

Writes ``<out>/<image stem>.npz`` (boxes, 2048-d features, object and
attribute ids + scores, class distribution, image size) and/or the BUTD
TSV ``<out>/regions_rank<r>.tsv``; skips finished images (resumable) and
lists unreadable ones in ``<out>/failed_rank<r>.txt``. Outputs are named
by a unique image id (the file stem, or the file name when two stems
clash); ``<out>/image_ids.csv`` maps ids to images. Shards over
processes and machines with torchrun. ``--workers`` processes read and
decode the next images while the network runs (same outputs as
``--workers 0``); ``--precision fp16`` / ``bf16`` runs the convolutions in
half precision (regions deviate slightly, see configs/butd/README.md). The
logic is in :mod:`mmext.apis.butd_extraction`.

Examples::

    python tools/feature_extraction/extract_regions.py \\
        configs/butd/butd_faster-rcnn_r101-caffe-c4_vg-36boxes.py \\
        pretrain_pth/butd_faster-rcnn_r101-caffe-c4_vg-iter320k.pth \\
        --images data/images --out data/regions --format npz tsv
    torchrun --nproc-per-node 4 tools/feature_extraction/extract_regions.py \\
        CONFIG CKPT --images data/images --out data/regions
    # smoke run without any weights (a tiny random detector, seconds)
    python tools/feature_extraction/extract_regions.py \\
        configs/butd/butd_faster-rcnn_tiny_random-init-smoke.py \\
        --random-init --images data/images --out work_dirs/regions_smoke

CHECKPOINT defaults to the config's ``load_from``; ``--random-init`` runs
without one (seeded; regions are meaningless, the files are well-formed).
"""
import argparse
import os
import sys

import torch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config', help='configs/butd/*.py')
    p.add_argument(
        'checkpoint',
        nargs='?',
        help="converted BUTD checkpoint (default: the config's load_from)")
    p.add_argument(
        '--random-init',
        action='store_true',
        help='no checkpoint: seeded random weights (smoke runs)')
    p.add_argument('--images', required=True, help='folder of images')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument(
        '--format',
        nargs='+',
        choices=['npz', 'tsv'],
        help="output formats (default: the config's "
        'extract_cfg.formats)')
    p.add_argument('--min-boxes', type=int)
    p.add_argument('--max-boxes', type=int)
    p.add_argument('--conf-thresh', type=float)
    p.add_argument('--device', default='cpu')
    p.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch CPU threads per process')
    p.add_argument(
        '--no-fuse',
        action='store_true',
        help='keep BatchNorm layers separate (default: folded into the '
        'convs, channels-last; same regions up to float rounding, faster)')
    p.add_argument(
        '--workers',
        type=int,
        default=min(2,
                    os.cpu_count() or 1),
        help='data-loader processes that decode and preprocess images '
        'while the network runs (default: 2, or 1 on one CPU); 0: in this '
        'process between images')
    p.add_argument(
        '--decode-budget-mb',
        type=int,
        default=1024,
        help='memory the workers together may hold while decoding; a '
        'larger image is listed as failed (default: 1024)')
    p.add_argument(
        '--precision',
        choices=['fp32', 'fp16', 'bf16'],
        default='fp32',
        help='convolutions in fp16 / bf16 (RPN, NMS, heads, softmax and '
        'stored features stay float32; needs the fused model)')
    p.add_argument(
        '--fp16',
        dest='precision',
        action='store_const',
        const='fp16',
        help='the same as --precision fp16')
    p.add_argument('--no-progress', action='store_true')
    return p.parse_args(argv)


def _checkpoint(args):
    """The checkpoint to load (None with --random-init); a missing file
    fails with the command that makes it."""
    from mmengine.config import Config

    from mmext.utils.paths import find_pretrained
    from mmext.utils.pretrained_sources import PRETRAINED_SOURCES
    if args.random_init:
        if args.checkpoint:
            raise ValueError('give a checkpoint or --random-init, not both')
        return None
    name = args.checkpoint or Config.fromfile(args.config).get('load_from')
    if not name:
        raise ValueError(f'{args.config} has no load_from: pass a checkpoint'
                         ' or --random-init')
    found = find_pretrained(name)
    if found is None:
        how = PRETRAINED_SOURCES.get(
            os.path.basename(name), 'see configs/butd/README.md')
        raise FileNotFoundError(
            f'checkpoint {name} not found; to make it: {how}; for a smoke '
            'run without weights add --random-init')
    return found


def main(argv=None):
    from mmext.apis.butd_extraction import (extract_regions,
                                            init_butd_detector, list_images,
                                            shard_from_env)
    from mmext.dedup.textio import escape_path
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        rank, world = shard_from_env()
        checkpoint = _checkpoint(args)
        if checkpoint is None:
            torch.manual_seed(0)  # the same random detector on every rank
        model, cfg = init_butd_detector(args.config, checkpoint, args.device,
                                        not args.no_fuse, args.precision)
        ext = dict(cfg.get('extract_cfg', {}))
        formats = args.format or ext.pop('formats', ['npz'])
        ext.pop('formats', None)
        save_cls_prob = ext.pop('save_cls_prob', True)
        for key in ('min_boxes', 'max_boxes', 'conf_thresh'):
            if getattr(args, key) is not None:
                ext[key] = getattr(args, key)
        images = list_images(args.images)
        summary = extract_regions(
            model,
            images,
            args.out,
            formats,
            ext,
            rank,
            world,
            save_cls_prob,
            progress=not args.no_progress and rank == 0,
            workers=args.workers,
            decode_budget=args.decode_budget_mb << 20)
    except (FileNotFoundError, ValueError) as e:
        print(f'extract_regions: {e}', file=sys.stderr)
        return 1
    out = escape_path(args.out)
    print(f"\nrank {rank}/{world}: {summary['done']} extracted, "
          f"{summary['skipped']} already done, {len(summary['failed'])} "
          f'unreadable (see {out}/failed_rank{rank}.txt)')
    for path, reason in summary['failed']:
        print(f'  unreadable: {escape_path(path)}: {escape_path(reason)}')
    if summary.get('few_regions'):
        few = summary['few_regions']
        print(f'  {len(few)} images gave fewer regions than min_boxes='
              f"{ext.get('min_boxes')} (e.g. {escape_path(few[0][0])}: "
              f'{few[0][1]}); small images have few proposals')
    if summary['damaged']:
        print(f"  {len(summary['damaged'])} damaged TSV lines moved to "
              f'{out}/regions_rank{rank}.tsv.damaged (their images were '
              'extracted again)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
