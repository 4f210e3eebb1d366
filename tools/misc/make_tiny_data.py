# Copyright (c) mmext contributors. All rights reserved.
"""Write the tiny 3-class image-folder data set used by configs/tiny/."""
import argparse

from mmext.testing import make_image_folder


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default='data/tiny')
    parser.add_argument('--per-class', type=int, default=16)
    parser.add_argument('--size', type=int, default=64)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    root = make_image_folder(
        args.out, per_class=args.per_class, size=args.size)
    print(f'wrote {root}/{{train,val}}/class_{{0,1,2}}/*.png')


if __name__ == '__main__':
    main()
