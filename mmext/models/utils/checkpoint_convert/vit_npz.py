# Copyright (c) mmext contributors. All rights reserved.
"""Google ViT ``.npz`` checkpoints -> mmpretrain / mmext ViT keys.

Reads ``ViT-{B,L}_{16,32}.npz`` (ImageNet-21k or ImageNet-1k fine-tuned,
google-research/vision_transformer) into ``backbone.*`` keys of mmpretrain's
``VisionTransformer`` (= mmext's ``TRARViT`` minus its routers) and,
optionally, ``head.*`` keys of ``VisionTransformerClsHead``. mmpretrain
converts timm and its own checkpoints but not Google's ``.npz`` layout
(``(C, heads, head_dim)`` attention kernels, HWIO convolutions, separate
query / key / value), which the reference ViT-TRAR code loads.
"""
import os
import os.path as osp
import re

import numpy as np
import torch

from .common import CheckpointConversionError

__all__ = [
    'NpzKeyError', 'load_vit_npz', 'vit_npz_arch', 'resize_grid',
    'convert_vit_npz', 'default_npz_dst', 'convert_vit_npz_file'
]

_BLOCK = 'Transformer/encoderblock_{}/'
_ATTN = 'MultiHeadDotProductAttention_1/'


class NpzKeyError(CheckpointConversionError, KeyError):
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


def load_vit_npz(path):
    """The arrays of a Google ViT ``.npz`` (no pickled objects allowed).

    Raises:
        FileNotFoundError: ``path`` does not exist, with where to get it.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found; download ViT-B_16.npz etc. from '
            'https://console.cloud.google.com/storage/vit_models/')
    return np.load(path, allow_pickle=False)


def vit_npz_arch(weights, source='npz'):
    """The ViT sizes of a Google checkpoint.

    Returns:
        tuple[dict, int]: ``embed_dims``, ``num_layers``, ``num_heads``,
        ``feedforward_channels`` (an mmpretrain ``arch`` dict), and the
        patch size.
    """
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
    q = _get(weights, _BLOCK.format(0) + _ATTN + 'query/kernel', source)
    fc = _get(weights, _BLOCK.format(0) + 'MlpBlock_3/Dense_0/kernel', source)
    return dict(
        embed_dims=kernel.shape[-1],
        num_layers=num_layers,
        num_heads=q.shape[1],
        feedforward_channels=fc.shape[1]), kernel.shape[0]


def resize_grid(pos_embed, new_grid, interp='bilinear'):
    """Resize the patch part of a (1, 1 + g*g, C) position embedding.

    ``bilinear`` follows the reference loader (``scipy.ndimage.zoom`` with
    ``order=1``, which mmpretrain does not offer); ``bicubic`` is
    mmpretrain's ``resize_pos_embed``.
    """
    cls_tok, grid = pos_embed[:, :1], pos_embed[0, 1:]
    old = int(round(grid.shape[0]**0.5))
    if old * old != grid.shape[0]:
        raise CheckpointConversionError(
            f'position embedding of {grid.shape[0]} patches is not a square '
            'grid')
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


def convert_vit_npz(weights,
                    head='drop',
                    img_size=None,
                    interp='bilinear',
                    source='npz'):
    """Google ViT arrays -> ``{'backbone.*': ..., 'head.*': ...}``.

    Args:
        weights (Mapping[str, np.ndarray]): The ``.npz`` arrays.
        head (str): ``'keep'`` the classifier (and ``pre_logits``) or
            ``'drop'`` it. Defaults to 'drop'.
        img_size (int, optional): Resize the position embedding for this
            input size. Defaults to None (as stored).
        interp (str): ``'bilinear'`` or ``'bicubic'``, see
            :func:`resize_grid`. Defaults to 'bilinear'.
        source (str): File name, for messages and ``meta``. Defaults to
            'npz'.

    Returns:
        tuple[dict, dict]: The state dict and ``meta`` (source, patch and
        image size, arch).
    """
    arch, patch = vit_npz_arch(weights, source)
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
        b, o = _BLOCK.format(i), f'layers.{i}.'
        for src, dst in (('LayerNorm_0', 'ln1'), ('LayerNorm_2', 'ln2')):
            sd[o + dst + '.weight'] = g(b + src + '/scale')
            sd[o + dst + '.bias'] = g(b + src + '/bias')
        # (C, heads, head_dim) kernels -> one fused (3C, C) qkv Linear
        sd[o + 'attn.qkv.weight'] = torch.cat([
            g(b + _ATTN + n + '/kernel').reshape(dims, dims).t()
            for n in ('query', 'key', 'value')
        ])
        sd[o + 'attn.qkv.bias'] = torch.cat([
            g(b + _ATTN + n + '/bias').reshape(dims)
            for n in ('query', 'key', 'value')
        ])
        sd[o + 'attn.proj.weight'] = g(b + _ATTN + 'out/kernel').reshape(
            dims, dims).t()
        sd[o + 'attn.proj.bias'] = g(b + _ATTN + 'out/bias')
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
    meta = dict(
        source=osp.basename(source),
        patch_size=int(patch),
        img_size=int(img_size or 0),
        **{k: int(v)
           for k, v in arch.items()})
    return out, meta


def default_npz_dst(src, img_size=None):
    """``pretrain_pth/<src stem>[_<img_size>].pth`` (the configs' names)."""
    return osp.join(
        'pretrain_pth',
        osp.splitext(osp.basename(src))[0] +
        (f'_{img_size}' if img_size else '') + '.pth')


def convert_vit_npz_file(src,
                         dst=None,
                         head='drop',
                         img_size=None,
                         interp='bilinear'):
    """Convert the ``.npz`` file ``src`` and save ``dict(state_dict, meta)``.

    Args:
        src (str): A Google ViT ``.npz``.
        dst (str, optional): Output ``.pth``; its folder is created.
            Defaults to None (:func:`default_npz_dst`).
        head, img_size, interp: See :func:`convert_vit_npz`.

    Returns:
        tuple[str, dict, dict]: ``dst``, the state dict and ``meta``.

    Raises:
        FileNotFoundError: ``src`` is missing.
        NpzKeyError | ValueError: ``src`` is not a Google ViT checkpoint,
            or a bad ``head`` / ``interp`` / ``img_size``; nothing is
            written.
    """
    weights = load_vit_npz(src)
    sd, meta = convert_vit_npz(weights, head, img_size, interp, src)
    dst = dst or default_npz_dst(src, img_size)
    if osp.dirname(dst):
        os.makedirs(osp.dirname(dst), exist_ok=True)
    torch.save({'state_dict': sd, 'meta': meta}, dst)
    return dst, sd, meta
