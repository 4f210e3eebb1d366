# Copyright (c) mmext contributors. All rights reserved.
"""One token / per-layer interface over mmpretrain's ViT and its subclasses.

mmpretrain's :class:`~mmpretrain.models.backbones.VisionTransformer` runs its
patch embedding, CLS token, position embedding, dropout and pre-norm inside
``forward`` only, and calls every block as ``layer(x)``. Code that needs the
tokens, or the state between two blocks (ViLBERT's co-attention, TRAR-ViT's
routed blocks that also take span masks), had to copy that prologue. Here it
is written once:

* :func:`embed_tokens` is the prologue of ``VisionTransformer.forward``;
* :func:`layer_context` is what a block needs besides the tokens (TRAR-ViT's
  span masks for the grid, ``None`` for a plain ViT);
* :func:`run_layer` runs block ``i`` with that context;
* :func:`iter_layers` runs every block and yields the tokens after each,
  the final norm applied after the last as upstream does.
"""
import torch
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed

from ..layers import SpanRoutedEncoderLayer

__all__ = [
    'is_vit', 'embed_tokens', 'layer_context', 'run_layer', 'iter_layers'
]


def is_vit(module):
    """True for mmpretrain's ``VisionTransformer`` and its subclasses
    (``TRARViT``, DeiT, ...), whose blocks can be run one by one."""
    return isinstance(module, VisionTransformer)


def embed_tokens(vit, x):
    """Images -> the first block's input, as ``VisionTransformer.forward``.

    Patch embedding, CLS token (if any), position embedding resized to the
    input's grid, ``drop_after_pos`` and ``pre_norm``.

    Args:
        vit (VisionTransformer): The backbone.
        x (Tensor): (B, 3, H, W) images.

    Returns:
        tuple: tokens (B, num_extra_tokens + h * w, C) and the patch
        resolution ``(h, w)``.
    """
    x, patch_resolution = vit.patch_embed(x)
    if vit.cls_token is not None:
        cls_token = vit.cls_token.expand(x.size(0), -1, -1)
        x = torch.cat((cls_token, x), dim=1)
    x = x + resize_pos_embed(
        vit.pos_embed,
        vit.patch_resolution,
        patch_resolution,
        mode=vit.interpolate_mode,
        num_extra_tokens=vit.num_extra_tokens)
    return vit.pre_norm(vit.drop_after_pos(x)), patch_resolution


def layer_context(vit, patch_resolution):
    """What the blocks take besides the tokens for this grid: TRAR-ViT's
    span masks, or None for a plain ViT."""
    from .trar_vit import TRARViT  # TRARViT imports this module
    if isinstance(vit, TRARViT):
        return vit.span_masks(patch_resolution)
    return None


def run_layer(vit, i, x, ctx=None):
    """Block ``i`` of ``vit`` on tokens ``x`` (span-routed blocks get
    ``ctx``, the :func:`layer_context`); no final norm."""
    layer = vit.layers[i]
    if isinstance(layer, SpanRoutedEncoderLayer):
        return layer(x, ctx)
    return layer(x)


def iter_layers(vit, x, patch_resolution):
    """Run every block; yield ``(i, tokens after block i)``.

    The backbone's final norm (``ln1``, when ``final_norm``) is applied
    after the last block, as in ``VisionTransformer.forward``.
    """
    ctx = layer_context(vit, patch_resolution)
    last = len(vit.layers) - 1
    for i in range(len(vit.layers)):
        x = run_layer(vit, i, x, ctx)
        if i == last and vit.final_norm:
            x = vit.ln1(x)
        yield i, x
