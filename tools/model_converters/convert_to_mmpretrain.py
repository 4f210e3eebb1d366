# Copyright (c) mmext contributors. All rights reserved.
"""Convert a torchvision / timm classification checkpoint to mmpretrain keys.

    python tools/model_converters/convert_to_mmpretrain.py torchvision-resnet \
        resnet18-f37072fd.pth pretrain_pth/resnet18_torchvision-in1k.pth

Formats: torchvision-resnet (resnet18/34/50/101/152), timm-seresnet
(legacy_seresnet50/101/152; build SEResNet with style='caffe'), timm-vit
(vit_*_patch*), timm-tinyvit (tiny_vit_{5m,11m,21m}_*). mmpretrain's own
released .pth files need no conversion. The output holds ``state_dict`` with
``backbone.*`` / ``head.*`` keys: use it with
``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')`` or
``load_from``.
"""
import argparse
import os
import os.path as osp
import sys

import torch

from mmext.models.utils.checkpoint_convert import (
    CONVERTERS, unwrap_state_dict)
from mmext.utils import safe_torch_load


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('format', choices=sorted(CONVERTERS))
    parser.add_argument('src', help='source checkpoint (.pth / .bin)')
    parser.add_argument('dst', help='output .pth (e.g. pretrain_pth/x.pth)')
    parser.add_argument(
        '--no-head', action='store_true',
        help='drop the ImageNet classifier (backbone weights only)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.src):
        sys.exit(f'convert_to_mmpretrain: {args.src} does not exist')
    state = unwrap_state_dict(safe_torch_load(args.src, map_location='cpu'))
    try:
        converted = CONVERTERS[args.format](state, keep_head=not args.no_head)
    except KeyError as e:
        sys.exit(f'convert_to_mmpretrain: {e.args[0]}')
    if osp.dirname(args.dst):
        os.makedirs(osp.dirname(args.dst), exist_ok=True)
    torch.save(
        dict(state_dict=converted,
             meta=dict(converted_from=osp.basename(args.src),
                       format=args.format)), args.dst)
    print(f'{args.src} ({len(state)} keys, {args.format}) -> {args.dst} '
          f'({len(converted)} keys)')


if __name__ == '__main__':
    main()
