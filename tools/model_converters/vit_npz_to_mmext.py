# Copyright (c) mmext contributors. All rights reserved.
"""Convert a Google ViT ``.npz`` checkpoint to mmpretrain / mmext keys.

Reads ``ViT-{B,L}_{16,32}.npz`` (ImageNet-21k or ImageNet-1k fine-tuned,
google-research/vision_transformer) and writes ``pretrain_pth/<name>.pth``
with ``backbone.*`` keys of mmpretrain's ``VisionTransformer`` (= mmext's
``TRARViT`` minus its routers) and, with ``--head keep``, ``head.*`` keys of
``VisionTransformerClsHead``. Load it with
``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.

Example:
    python tools/model_converters/vit_npz_to_mmext.py ViT-B_16.npz \
        --img-size 384 --interp bilinear
"""
import argparse
import os
import os.path as osp
import re
import sys

import numpy as np
import torch

BLOCK = 'Transformer/encoderblock_{}/'
ATTN = 'MultiHeadDotProductAttention_1/'


class NpzKeyError(KeyError):
    """The .npz lacks a key every Google ViT checkpoint has."""

    def __str__(self):
        return self.args[0]


def _get(weights, key, source):
    if key not in weights:
        raise NpzKeyError(
            f'{source}: missing key {key!r}; not a Google ViT checkpoint '
            '(expected the layout of ViT-{B,L}_{16,32}.npz from '
            'google-research/vision_transformer)')
    return torch.from_numpy(np.asarray(weights[key], dtype=np.float32))


def infer_arch(weights, source='npz'):
    """embed_dims, num_layers, num_heads, feedforward_channels, patch."""
    kernel = _get(weights, 'embedding/kernel', source)  # h w i o
    blocks = {
        int(m.group(1))
        for k in weights
        for m in [re.match(r'Transformer/encoderblock_(\d+)/', k)] if m
    }
    if not blocks:
        raise NpzKeyError(f'{source}: no Transformer/encoderblock_* keys; '
                          'not a Google ViT checkpoint')
    num_layers = max(blocks) + 1
    q = _get(weights, BLOCK.format(0) + ATTN + 'query/kernel', source)
    fc = _get(weights, BLOCK.format(0) + 'MlpBlock_3/Dense_0/kernel', source)
    return dict(
        embed_dims=kernel.shape[-1],
        num_layers=num_layers,
        num_heads=q.shape[1],
        feedforward_channels=fc.shape[1]), kernel.shape[0]


def resize_grid(pos_embed, new_grid, interp='bilinear'):
    """Resize the patch part of a (1, 1 + g*g, C) position embedding.

    ``bilinear`` follows the reference loader (``scipy.ndimage.zoom`` with
    ``order=1``); ``bicubic`` is mmpretrain's ``resize_pos_embed``.
    """
    cls_tok, grid = pos_embed[:, :1], pos_embed[0, 1:]
    old = int(round(grid.shape[0]**0.5))
    if old * old != grid.shape[0]:
        raise ValueError(f'position embedding of {grid.shape[0]} patches is '
                         'not a square grid')
    if old == new_grid:
        return pos_embed
    if interp == 'bilinear':
        from scipy import ndimage
        zoom = (new_grid / old, new_grid / old, 1)
        g = ndimage.zoom(grid.reshape(old, old, -1).numpy(), zoom, order=1)
        g = torch.from_numpy(g).reshape(1, new_grid * new_grid, -1)
        return torch.cat([cls_tok, g], dim=1)
    if interp == 'bicubic':
        from mmpretrain.models.utils import resize_pos_embed
        return resize_pos_embed(pos_embed, (old, old), (new_grid, new_grid),
                                'bicubic', 1)
    raise ValueError(f'--interp {interp!r}: use bilinear or bicubic')


def convert(weights,
            head='drop',
            img_size=None,
            interp='bilinear',
            source='npz'):
    """Google ViT arrays -> ``{'backbone.*': ..., 'head.*': ...}``."""
    arch, patch = infer_arch(weights, source)
    dims = arch['embed_dims']

    def g(key):
        return _get(weights, key, source)

    sd = {
        'cls_token': g('cls').reshape(1, 1, dims),
        'pos_embed': g('Transformer/posembed_input/pos_embedding'),
        # HWIO -> OIHW
        'patch_embed.projection.weight':
        g('embedding/kernel').permute(3, 2, 0, 1),
        'patch_embed.projection.bias': g('embedding/bias'),
        'ln1.weight': g('Transformer/encoder_norm/scale'),
        'ln1.bias': g('Transformer/encoder_norm/bias'),
    }
    if img_size is not None:
        sd['pos_embed'] = resize_grid(sd['pos_embed'], img_size // patch,
                                      interp)
    for i in range(arch['num_layers']):
        b, o = BLOCK.format(i), f'layers.{i}.'
        for src, dst in (('LayerNorm_0', 'ln1'), ('LayerNorm_2', 'ln2')):
            sd[o + dst + '.weight'] = g(b + src + '/scale')
            sd[o + dst + '.bias'] = g(b + src + '/bias')
        # (C, heads, head_dim) kernels -> one fused (3C, C) qkv Linear
        sd[o + 'attn.qkv.weight'] = torch.cat([
            g(b + ATTN + n + '/kernel').reshape(dims, dims).t()
            for n in ('query', 'key', 'value')
        ])
        sd[o + 'attn.qkv.bias'] = torch.cat([
            g(b + ATTN + n + '/bias').reshape(dims)
            for n in ('query', 'key', 'value')
        ])
        sd[o + 'attn.proj.weight'] = g(b + ATTN +
                                       'out/kernel').reshape(dims, dims).t()
        sd[o + 'attn.proj.bias'] = g(b + ATTN + 'out/bias')
        for src, dst in (('Dense_0', 'ffn.layers.0.0'), ('Dense_1',
                                                         'ffn.layers.1')):
            sd[o + dst + '.weight'] = g(b + 'MlpBlock_3/' + src +
                                        '/kernel').t()
            sd[o + dst + '.bias'] = g(b + 'MlpBlock_3/' + src + '/bias')
    out = {'backbone.' + k: v.contiguous() for k, v in sd.items()}
    if head == 'keep':
        out['head.layers.head.weight'] = g('head/kernel').t().contiguous()
        out['head.layers.head.bias'] = g('head/bias')
        if 'pre_logits/kernel' in weights:
            out['head.layers.pre_logits.weight'] = g(
                'pre_logits/kernel').t().contiguous()
            out['head.layers.pre_logits.bias'] = g('pre_logits/bias')
    elif head != 'drop':
        raise ValueError(f'--head {head!r}: use keep or drop')
    meta = dict(source=osp.basename(source), patch_size=int(patch),
                img_size=int(img_size or 0), **{k: int(v)
                                                for k, v in arch.items()})
    return out, meta


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
    if not osp.isfile(args.src):
        sys.exit(f'{args.src} not found; download ViT-B_16.npz etc. from '
                 'https://console.cloud.google.com/storage/vit_models/')
    weights = np.load(args.src)
    try:
        sd, meta = convert(weights, args.head, args.img_size, args.interp,
                           args.src)
    except (NpzKeyError, ValueError) as e:
        sys.exit(str(e))
    dst = args.dst or osp.join(
        'pretrain_pth',
        osp.splitext(osp.basename(args.src))[0] +
        (f'_{args.img_size}' if args.img_size else '') + '.pth')
    if osp.dirname(dst):
        os.makedirs(osp.dirname(dst), exist_ok=True)
    torch.save({'state_dict': sd, 'meta': meta}, dst)
    arch = {k: meta[k] for k in ('embed_dims', 'num_layers', 'num_heads',
                                 'feedforward_channels')}
    print(f'{args.src} -> {dst}: {len(sd)} tensors, arch {arch}, '
          f'patch {meta["patch_size"]}, head {args.head}')


if __name__ == '__main__':
    main()
