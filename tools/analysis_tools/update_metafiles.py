# Copyright (c) mmext contributors. All rights reserved.
"""Recompute Parameters / FLOPs in configs/<family>/metafile.yml.

    python tools/analysis_tools/update_metafiles.py               # all
    python tools/analysis_tools/update_metafiles.py trar_vit tiny
"""
import argparse
from pathlib import Path

from mmext.apis.metafile import (model_families, update_metafile,
                                 update_model_index)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'families',
        nargs='*',
        help='config folders to update (default: every one with models)')
    parser.add_argument(
        '--root', default='.', help='project root (holds configs/)')
    parser.add_argument(
        '--skip',
        nargs='*',
        default=[],
        metavar='STEM=REASON',
        help='config stems not to count, with the reason written to the '
        'metafile (e.g. "vilbert_x=needs pretrain_pth/bert-base-uncased")')
    return parser.parse_args()


def main():
    args = parse_args()
    root = Path(args.root).resolve()
    skip = dict(s.split('=', 1) for s in args.skip)
    families = [root / 'configs' / f for f in args.families] or \
        model_families(root)
    for family in families:
        print(f'{update_metafile(family, root, skip=skip)}')
    print(update_model_index(root))


if __name__ == '__main__':
    main()
