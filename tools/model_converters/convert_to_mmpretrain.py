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
``load_from``. The key tables are
:mod:`mmext.models.utils.checkpoint_convert.classification`.
"""
import argparse
import sys

from mmext.models.utils.checkpoint_convert import (CONVERTERS,
                                                   convert_checkpoint_file)
from mmext.utils import CorruptCheckpointError, UnsafeCheckpointError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('format', choices=sorted(CONVERTERS))
    parser.add_argument('src', help='source checkpoint (.pth / .bin)')
    parser.add_argument('dst', help='output .pth (e.g. pretrain_pth/x.pth)')
    parser.add_argument(
        '--no-head',
        action='store_true',
        help='drop the ImageNet classifier (backbone weights only)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        state, converted = convert_checkpoint_file(
            args.format, args.src, args.dst, keep_head=not args.no_head)
    except (FileNotFoundError, CorruptCheckpointError,
            UnsafeCheckpointError) as e:
        sys.exit(f'convert_to_mmpretrain: {e}')
    except KeyError as e:
        sys.exit(f'convert_to_mmpretrain: {e.args[0]}')
    print(f'{args.src} ({len(state)} keys, {args.format}) -> {args.dst} '
          f'({len(converted)} keys)')


if __name__ == '__main__':
    main()
