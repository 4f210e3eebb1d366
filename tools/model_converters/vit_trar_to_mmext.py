# Copyright (c) mmext contributors. All rights reserved.
"""Convert a ViT-TRAR checkpoint (hsb1357173526/ViT-TRAR) to mmext keys.

Reads ``ViT_TRAR_*.ckpt`` (its ``train.py`` dict with ``state_dict``,
``optimizer``, ``scheduler``, ...) or a bare ``*_checkpoint.bin`` state dict,
writes ``dict(state_dict, meta)`` with ``backbone.*`` (``TRARViT``) and
``head.layers.head.*`` (``VisionTransformerClsHead``) keys, and loads the
result strictly into ``--config``'s model (or a model built from the
checkpoint's shapes), reporting every missing, unexpected or mis-shaped key.

The span order values are not stored in the file (only their number):
``--orders`` defaults to 0..L-1, the reference's [0, 1, 2] (384 px) and
[0, 1, 2, 3] (224 px). Image size, width, depth and router size come from
the shapes.

Example::

    python tools/model_converters/vit_trar_to_mmext.py \\
        ViT_TRAR_384_012.ckpt pretrain_pth/vit-trar-b16_in1k-384.pth \\
        --orders 0 1 2 \\
        --config \
        configs/trar_vit/trar-vit-base-p16_8xb64-in21k-pre_in1k-384px.py
"""
import argparse
import sys

from mmext.models.utils.checkpoint_convert import (CheckpointConversionError,
                                                   convert_vit_trar_checkpoint)
from mmext.utils import CorruptCheckpointError, UnsafeCheckpointError


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src', help='ViT_TRAR_*.ckpt or *_checkpoint.bin')
    p.add_argument('dst', help='output .pth')
    p.add_argument(
        '--orders',
        type=int,
        nargs='+',
        help='span orders the model was trained with '
        '(default 0 .. L-1)')
    p.add_argument(
        '--img-size', type=int, help='checked against the position embedding')
    p.add_argument(
        '--num-heads',
        type=int,
        help='attention heads (default: the ViT arch of that '
        'width, 12 for ViT-B)')
    p.add_argument(
        '--config',
        help='mmext config whose model must take '
        'the weights strictly')
    p.add_argument(
        '--no-head', action='store_true', help='keep the backbone only')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        state_dict, model_cfg = convert_vit_trar_checkpoint(
            args.src,
            args.dst,
            orders=args.orders,
            img_size=args.img_size,
            num_heads=args.num_heads,
            config=args.config,
            keep_head=not args.no_head)
    except (CheckpointConversionError, KeyError, FileNotFoundError,
            CorruptCheckpointError, UnsafeCheckpointError) as e:
        msg = e.args[0] if isinstance(e, KeyError) else e
        print(f'vit_trar_to_mmext: {msg}', file=sys.stderr)
        return 1
    backbone = model_cfg['backbone']
    print(f'wrote {args.dst}: {len(state_dict)} tensors; loads strictly '
          f"into TRARViT(img_size={backbone.get('img_size')}, "
          f"orders={backbone.get('orders')})")
    return 0


if __name__ == '__main__':
    sys.exit(main())
