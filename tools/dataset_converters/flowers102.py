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

The logic is in mmext/datasets/downloaders/ (archives.py: fetch, md5,
safe extraction; flowers.py: the files and the checks).
"""
import sys

from mmext.datasets.downloaders import FLOWERS102, release_parser, run_release


def parse_args(argv=None):
    return release_parser(FLOWERS102, __doc__.split('\n')[0]).parse_args(argv)


def main(argv=None):
    return run_release(FLOWERS102, parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
