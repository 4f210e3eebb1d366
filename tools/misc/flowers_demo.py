# Copyright (c) mmext contributors. All rights reserved.
"""The Flowers leakage demo (``make demo``), end to end on generated data.

1. writes Flowers-17 and Flowers-102 look-alikes in the real layouts under
   ``data/demo/`` (mmext.datasets.synthetic.flowers), planting edited copies
   (re-encoded, resized, mirrored, 70 % cropped) of Flowers-17 test images
   into the Flowers-102 training split;
2. finds them as ``tools/dedup/find_leakage.py --stage geometric`` does,
   which writes the exclude file;
3. trains ResNet-18 at 64 px on Flowers-102 without the excluded images
   (configs/flowers/resnet18_1xb8-scratch_demo-flowers102-noleak-64px.py),
   then on Flowers-17 from that backbone
   (configs/flowers/resnet18_1xb8-scratch_demo-flowers17-64px.py), as
   ``tools/train.py`` does;
4. tests on the Flowers-17 test split as ``tools/test.py`` does and prints
   the accuracy and ``leaked: found N of N planted``.

All stages run in this one process, through the package functions those
tools call, on the config this script writes into the work dir (the demo
config with the data paths of this run). Each stage's tool command is
printed, so every step can be re-run by hand, and its output goes to a log
file in the work dir. The logic is in mmext/apis/flowers_demo.py.
"""
import argparse
import sys

from mmext.apis.flowers_demo import run_flowers_demo


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--data-root',
        default='data/demo',
        help='where flowers17/, flowers102/ and leakage/ '
        'are written (replaced if present)')
    parser.add_argument('--work-dir', default='work_dirs/flowers_demo')
    parser.add_argument(
        '--size',
        type=int,
        default=64,
        help='image side, and the model input size')
    parser.add_argument(
        '--per-class-17',
        type=int,
        default=12,
        help='Flowers-17 images per class (real: 80)')
    parser.add_argument(
        '--per-class-102',
        type=int,
        default=4,
        help='Flowers-102 images per class (>= 3)')
    parser.add_argument(
        '--planted',
        type=int,
        default=6,
        help='Flowers-17 test images planted into 102')
    parser.add_argument('--epochs-102', type=int, default=3)
    parser.add_argument('--epochs-17', type=int, default=8)
    parser.add_argument('--batch-size', type=int, default=8)
    return parser.parse_args(argv)


def main(argv=None):
    summary = run_flowers_demo(**vars(parse_args(argv)))
    ok = summary['found'] == summary['planted'] and \
        not summary['false_matches']
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
