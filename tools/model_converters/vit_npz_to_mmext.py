# Copyright (c) mmext contributors. All rights reserved.
"""Convert a Google ViT ``.npz`` checkpoint to mmpretrain / mmext keys.

Reads ``ViT-{B,L}_{16,32}.npz`` (ImageNet-21k or ImageNet-1k fine-tuned,
google-research/vision_transformer) and writes ``pretrain_pth/<name>.pth``
with ``backbone.*`` keys of mmpretrain's ``VisionTransformer`` (= mmext's
``TRARViT`` minus its routers) and, with ``--head keep``, ``head.*`` keys of
``VisionTransformerClsHead``. Load it with
``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.
The conversion is :mod:`mmext.models.utils.checkpoint_convert.vit_npz`.

Example:
    python tools/model_converters/vit_npz_to_mmext.py ViT-B_16.npz \
        --img-size 384 --interp bilinear
"""
import argparse
import sys

from mmext.models.utils.checkpoint_convert import (NpzKeyError,
                                                   convert_vit_npz_file)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='Google ViT .npz file')
    parser.add_argument(
        'dst',
        nargs='?',
        help='output .pth (default: pretrain_pth/<src name>.pth)')
    parser.add_argument(
        '--head',
        choices=['keep', 'drop'],
        default='drop',
        help='keep the classifier (and pre_logits) or drop it')
    parser.add_argument(
        '--img-size',
        type=int,
        help='resize the position embedding for this input size')
    parser.add_argument(
        '--interp',
        choices=['bilinear', 'bicubic'],
        default='bilinear',
        help='position-embedding resize: bilinear (reference loader, '
        'scipy zoom order 1) or bicubic (mmpretrain)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        dst, sd, meta = convert_vit_npz_file(args.src, args.dst, args.head,
                                             args.img_size, args.interp)
    except (FileNotFoundError, NpzKeyError, ValueError) as e:
        sys.exit(str(e))
    arch = {
        k: meta[k]
        for k in ('embed_dims', 'num_layers', 'num_heads',
                  'feedforward_channels')
    }
    print(f'{args.src} -> {dst}: {len(sd)} tensors, arch {arch}, '
          f'patch {meta["patch_size"]}, head {args.head}')


if __name__ == '__main__':
    main()
