# Copyright (c) mmext contributors. All rights reserved.
"""Fetch and verify Oxford Flowers-17 (data/flowers17).

  python tools/dataset_converters/flowers17.py download [--out data/flowers17]
  python tools/dataset_converters/flowers17.py verify [data/flowers17]

``download`` fetches 17flowers.tgz and datasplits.mat from the official
page, checks their md5, extracts ``jpg/`` and verifies the folder; offline
it fails within ``--timeout`` seconds (use ``--archive-dir`` with files
fetched by hand). ``verify`` checks an existing folder (the .mat keys and
indices, every split's image files, the split sizes) and exits non-zero on
a problem.
"""
import glob
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from flowers_utils import build_parser, report, run  # noqa: E402

from mmext.datasets.flowers import Flowers17  # noqa: E402

BASE_URL = 'https://www.robots.ox.ac.uk/~vgg/data/flowers/17/'
FILES = [('17flowers.tgz', 'b59a65d8d1a99cd66944d474e1289eab'),
         ('datasplits.mat', '4828cddfd0d803c5abbdebcb1e148a1e')]
REAL_IMAGES = 1360


def verify(root):
    """Check a Flowers-17 folder; print a summary; return the exit code."""
    if not osp.isdir(root):
        return report('Flowers17', root, [], [
            f'{root} is not a folder; expected layout:\n{Flowers17.LAYOUT}'])
    on_disk = len(glob.glob(osp.join(root, 'jpg', 'image_*.jpg')))
    note = '' if on_disk == REAL_IMAGES else \
        f' (the real set has {REAL_IMAGES})'
    summary = [f'{on_disk} images in jpg/{note}']
    problems, errors = [], {}  # loader message -> the splits it hit
    for split_id in (1, 2, 3):
        sets, sizes = {}, []
        for split in ('train', 'val', 'test'):
            try:
                ds = Flowers17(root, split=split, split_id=split_id,
                               serialize_data=False)
            except Exception as e:  # each loader error is one problem
                errors.setdefault(str(e).strip('"'), []).append(
                    f'split {split_id} {split}')
                continue
            paths = [ds.get_data_info(i)['img_path'] for i in range(len(ds))]
            sets[split] = set(paths)
            classes = len({ds.get_data_info(i)['gt_label']
                           for i in range(len(ds))})
            sizes.append(f'{split} {len(ds)} ({classes} classes)')
            if classes != 17:
                problems.append(f'split {split_id} {split} covers {classes} '
                                f'of 17 classes')
        summary.append(f'split {split_id}: ' + ', '.join(sizes))
        names = sorted(sets)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                shared = sets[a] & sets[b]
                if shared:
                    problems.append(
                        f'split {split_id}: {len(shared)} images are in both '
                        f'{a} and {b}, e.g. {osp.basename(min(shared))}')
    problems[:0] = [f'{", ".join(where)}: {msg}'
                    for msg, where in errors.items()]
    return report('Flowers17', root, summary, problems)


def main(argv=None):
    parser = build_parser(__doc__.split('\n')[0], 'Flowers-17', FILES,
                          BASE_URL, 'data/flowers17')
    return run(parser.parse_args(argv), verify, FILES, 'Flowers17')


if __name__ == '__main__':
    sys.exit(main())
