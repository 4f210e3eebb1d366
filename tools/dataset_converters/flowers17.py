# Copyright (c) mmext contributors. All rights reserved.
"""Fetch and verify Oxford Flowers-17 (data/flowers17).

  python tools/dataset_converters/flowers17.py download [--out data/flowers17]
  python tools/dataset_converters/flowers17.py verify [data/flowers17]

``download`` fetches 17flowers.tgz and datasplits.mat from the official
page, checks their md5, extracts ``jpg/`` and verifies the folder; offline
it fails within ``--timeout`` seconds (use ``--archive-dir`` with files
fetched by hand). ``verify`` checks an existing folder with the checks the
data set runs when it is built (mmext.datasets.validation: every key and
index of datasplits.mat, overlaps, classes; every split's image files),
lists every problem and exits non-zero on one.
"""
import glob
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from flowers_utils import build_parser, report, run  # noqa: E402

from mmext.datasets.flowers import Flowers17  # noqa: E402
from mmext.datasets.validation import (check_image_files,  # noqa: E402
                                       flowers17_data_list)

BASE_URL = 'https://www.robots.ox.ac.uk/~vgg/data/flowers/17/'
FILES = [('17flowers.tgz', 'b59a65d8d1a99cd66944d474e1289eab'),
         ('datasplits.mat', '4828cddfd0d803c5abbdebcb1e148a1e')]
REAL_IMAGES = 1360


def verify(root):
    """Check a Flowers-17 folder with the data set's own checks; print a
    summary; return the exit code."""
    if not osp.isdir(root):
        return report('Flowers17', root, [], [
            f'{root} is not a folder; expected layout:\n{Flowers17.LAYOUT}'])
    on_disk = len(glob.glob(osp.join(root, 'jpg', 'image_*.jpg')))
    note = '' if on_disk == REAL_IMAGES else \
        f' (the real set has {REAL_IMAGES})'
    summary = [f'{on_disk} images in jpg/{note}']
    dataset = Flowers17(root, lazy_init=True, serialize_data=False)
    try:
        splits, per_class, problems = dataset.read_split_file()
    except (OSError, KeyError, ValueError) as e:
        return report('Flowers17', root, summary, [str(e).strip('"')])
    missing = {}  # missing-images message -> the splits it hit
    for split_id in (1, 2, 3) if splits else ():
        sizes = []
        for split in ('train', 'val', 'test'):
            keys = [f'{p}{split_id}' for p in Flowers17.SPLIT_KEYS[split]]
            data_list = flowers17_data_list(splits, keys, per_class,
                                            dataset.img_prefix)
            try:
                check_image_files('Flowers17', root, data_list, 'fetch '
                                  'them again: flowers17.py download')
            except (FileNotFoundError, ValueError) as e:
                missing.setdefault(str(e), []).append(
                    f'split {split_id} {split}')
            classes = len({d['gt_label'] for d in data_list})
            sizes.append(f'{split} {len(data_list)} ({classes} classes)')
        summary.append(f'split {split_id}: ' + ', '.join(sizes))
    problems += [f'{", ".join(where)}: {msg}'
                 for msg, where in missing.items()]
    return report('Flowers17', root, summary, problems)


def main(argv=None):
    parser = build_parser(__doc__.split('\n')[0], 'Flowers-17', FILES,
                          BASE_URL, 'data/flowers17')
    return run(parser.parse_args(argv), verify, FILES, 'Flowers17')


if __name__ == '__main__':
    sys.exit(main())
