# Copyright (c) mmext contributors. All rights reserved.
"""Fetch and verify Oxford Flowers-102 (data/flowers102).

  python tools/dataset_converters/flowers102.py download [--out DIR]
  python tools/dataset_converters/flowers102.py verify [data/flowers102]

``download`` fetches 102flowers.tgz, imagelabels.mat and setid.mat from the
official page, checks their md5, extracts ``jpg/`` and verifies the folder;
offline it fails within ``--timeout`` seconds (use ``--archive-dir`` with
files fetched by hand). ``verify`` checks an existing folder with the checks
the data set runs when it is built (mmext.datasets.validation: the .mat
keys, ids, labels, overlaps and classes; every split's image files), lists
every problem and exits non-zero on one. For the no-leak configs, then run
tools/dedup/find_leakage.py (see data/README.md).
"""
import glob
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from flowers_utils import build_parser, report, run  # noqa: E402

from mmext.datasets.flowers import Flowers102  # noqa: E402
from mmext.datasets.validation import check_image_files  # noqa: E402

BASE_URL = 'https://www.robots.ox.ac.uk/~vgg/data/flowers/102/'
FILES = [('102flowers.tgz', '52808999861908f626f3c1f4e79d11fa'),
         ('imagelabels.mat', 'e0620be6f572b9609742df49c70aed4d'),
         ('setid.mat', 'a5357ecc9cb78c4bef273ce3793fc85c')]
REAL_IMAGES = 8189


def verify(root):
    """Check a Flowers-102 folder with the data set's own checks; print a
    summary; return the exit code."""
    if not osp.isdir(root):
        return report('Flowers102', root, [], [
            f'{root} is not a folder; expected layout:\n{Flowers102.LAYOUT}'])
    on_disk = len(glob.glob(osp.join(root, 'jpg', 'image_*.jpg')))
    note = '' if on_disk == REAL_IMAGES else \
        f' (the real set has {REAL_IMAGES})'
    summary = [f'{on_disk} images in jpg/{note}']
    dataset = Flowers102(root, lazy_init=True, serialize_data=False)
    try:
        labels, ids, problems = dataset.read_split_files()
    except (OSError, KeyError, ValueError) as e:
        return report('Flowers102', root, summary, [str(e).strip('"')])
    sizes = []
    for split, key in (('train', 'trnid'), ('val', 'valid'),
                       ('test', 'tstid')) if ids else ():
        data_list = [dict(img_path=osp.join(root, 'jpg',
                                            f'image_{i:05d}.jpg'))
                     for i in ids[key].tolist()]
        try:
            check_image_files('Flowers102', root, data_list,
                              'fetch them again: flowers102.py download')
        except (FileNotFoundError, ValueError) as e:
            problems.append(f'{split}: {e}')
        classes = len(set(labels[ids[key] - 1].tolist()))
        sizes.append(f'{split} {len(data_list)} ({classes} classes)')
    summary.append(', '.join(sizes))
    exclude = osp.join(root, 'exclude_flowers17.txt')
    summary.append(f'exclude_flowers17.txt: '
                   f'{"present" if osp.isfile(exclude) else "absent"} '
                   f'(tools/dedup/find_leakage.py writes it)')
    return report('Flowers102', root, summary, problems)


def main(argv=None):
    parser = build_parser(__doc__.split('\n')[0], 'Flowers-102', FILES,
                          BASE_URL, 'data/flowers102')
    return run(parser.parse_args(argv), verify, FILES, 'Flowers102')


if __name__ == '__main__':
    sys.exit(main())
