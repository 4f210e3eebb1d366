# Copyright (c) mmext contributors. All rights reserved.
"""Classify one image with a config and a checkpoint; print the top-k.

Example:
    python tools/infer.py demo.jpg \
        configs/tiny/resnet18_1xb8-scratch_tiny-64px.py \
        work_dirs/resnet18_1xb8-scratch_tiny-64px/epoch_4.pth --topk 3
"""
import argparse
import contextlib
import os.path as osp
import sys

from mmengine.config import DictAction

from mmext.apis.inference import init_classifier, predict_topk


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--topk', type=int, default=5, help='classes shown')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, as in tools/train.py')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for name, path in (('image', args.image), ('config', args.config),
                       ('checkpoint', args.checkpoint)):
        if not osp.isfile(path):
            sys.exit(f'{name} {path} not found')
    # mmengine logs checkpoint loading to stdout: keep stdout for results
    with contextlib.redirect_stdout(sys.stderr):
        inferencer = init_classifier(args.config, args.checkpoint, args.device,
                                     args.cfg_options)
        preds = predict_topk(inferencer, args.image, args.topk)
    print(f'{"rank":>4}  {"index":>5}  {"score":>7}  class')
    for rank, p in enumerate(preds, 1):
        print(f'{rank:>4}  {p["index"]:>5}  {p["score"]:>7.4f}  '
              f'{p["name"] if p["name"] is not None else "-"}')


if __name__ == '__main__':
    main()
