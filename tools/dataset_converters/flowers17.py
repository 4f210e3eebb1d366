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

The logic is in mmext/datasets/downloaders/ (archives.py: fetch, md5,
safe extraction; flowers.py: the files and the checks).
"""
import sys

from mmext.datasets.downloaders import FLOWERS17, release_parser, run_release


def parse_args(argv=None):
    return release_parser(FLOWERS17, __doc__.split('\n')[0]).parse_args(argv)


def main(argv=None):
    return run_release(FLOWERS17, parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
