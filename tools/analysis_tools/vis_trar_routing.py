# Copyright (c) mmext contributors. All rights reserved.
"""Save TRAR-ViT routing weights (JSON) and attention-span pictures (PNG).

For one image: the routing weights α over the span orders of every routed
layer, and, for a chosen query patch, the *effective span* of each layer,
``Σ_l α_l · [key patch inside span l]`` (1 where every order reaches, the
share of weight elsewhere). The collection and drawing are
:mod:`mmext.visualization.trar_routing`.

Example:
    python tools/analysis_tools/vis_trar_routing.py demo.jpg \
        configs/trar_vit/trar-vit-base-p16_8xb64-in21k-pre_cifar10.py \
        ckpt.pth \
        --out work_dirs/routing --query 7 7
"""
import argparse
import contextlib
import os.path as osp
import sys

from mmengine.config import DictAction

from mmext.apis.inference import init_classifier
from mmext.visualization import save_trar_routing


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='a TRAR-ViT config')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument(
        '--query',
        type=int,
        nargs=2,
        metavar=('ROW', 'COL'),
        help='query patch on the grid (default: the centre)')
    parser.add_argument('--device', default='cpu')
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
    with contextlib.redirect_stdout(sys.stderr):  # mmengine's load log
        inferencer = init_classifier(args.config, args.checkpoint, args.device,
                                     args.cfg_options)
    try:
        json_path, png_path = save_trar_routing(inferencer, args.image,
                                                args.out, args.query,
                                                args.config, args.checkpoint)
    except (TypeError, ValueError) as e:
        sys.exit(str(e))
    print(f'routing weights -> {json_path}\nspan picture -> {png_path}')


if __name__ == '__main__':
    main()
