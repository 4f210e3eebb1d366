# Copyright (c) mmext contributors. All rights reserved.
"""TRAR-ViT: a Vision Transformer whose attention spans are routed."""
from collections.abc import Sequence

import numpy as np
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.utils import to_2tuple

from mmext.registry import MODELS
from ..layers import SpanMasks, SpanRoutedEncoderLayer, SpanRouter
from ..layers.routing import POOLING_MODES, ROUTING_MODES
from .vit_interface import embed_tokens, iter_layers

__all__ = ['TRARViT']


@MODELS.register_module()
class TRARViT(VisionTransformer):
    """Vision Transformer with TRAR span routing.

    `TRAR: Routing the Attention Spans in Transformer for Visual Question
    Answering` (Zhou et al., ICCV 2021) lets every self-attention layer mix
    attention maps of several spans with per-sample weights: order 0 is
    global attention, order k a (2k+1)² window on the patch grid. The ViT
    variant (hsb1357173526/ViT-TRAR) routes all 12 blocks of ViT-B/16 with
    soft routing and average pooling; the CLS row and column stay global.

    Built on mmpretrain's :class:`VisionTransformer`: the same ``arch`` table,
    ``out_type`` s, pos-embed resizing, non-square inputs and state-dict keys
    (mmpretrain ViT checkpoints load unchanged; ``layers.{i}.attn.router.*``
    are the only new keys). What the reference lacked: masks are built once,
    vectorised, as device-following buffers (and cached per grid for other
    resolutions) instead of Python loops with ``.cuda()`` in every forward;
    spans are mixed as outputs of fused SDPA calls instead of a materialised
    (B, L, H, N, N) stack; hard routing, ``fc``/``attention`` pooling,
    binarized inference, per-layer orders and a no-CLS option exist.

    Note: the CLS row attends globally in every span, so with
    ``out_type='cls_token'`` the last layer's routing cannot change the
    output (its router gets no gradient); ``routed_layers`` can leave it out.

    Args:
        arch (str | dict): As :class:`VisionTransformer`. Defaults to
            ``'base'``.
        img_size (int | tuple): Input size; must be divisible by
            ``patch_size`` (the span grid is ``img_size / patch_size``).
            Defaults to 224.
        patch_size (int | tuple): Patch size. Defaults to 16.
        orders (Sequence[int] | Sequence[Sequence[int] | None]): Span orders
            of every routed layer, or one entry per layer (``None`` or
            ``[0]``: a plain ViT layer). Defaults to ``(0, 1, 2, 3)``.
        routed_layers (Sequence[int], optional): Indices of the routed
            layers (negative allowed); the others are plain ViT layers.
            Defaults to None (all layers).
        routing (str): ``'soft'`` or ``'hard'`` (Gumbel-softmax, temperature
            from ``TRARTemperatureHook``). Defaults to ``'soft'``.
        pooling (str): ``'avg'``, ``'fc'`` or ``'attention'``.
            Defaults to ``'avg'``.
        binarize (bool): One-hot routing at eval. Defaults to False.
        straight_through (bool): Straight-through hard routing in training.
            Defaults to False.
        routing_reduction (int): Router MLP width C / r. Defaults to 2.
        attn_impl (str): How a routed layer mixes its spans: ``'nested'``
            (one score matrix, ring-wise coefficients), ``'per_span'`` (one
            fused SDPA call per span) or ``'auto'`` (nested on CPU); all
            exact. See :class:`SpanRoutedAttention`. Defaults to ``'auto'``.
        proj_drop_rate (float, optional): Dropout after every attention
            output projection. ViT-TRAR (like ViT-pytorch) uses its
            ``attention_dropout_rate`` 0.0 there while mmpretrain uses
            ``drop_rate``. Defaults to None (``drop_rate``, mmpretrain).
        drop_rate, drop_path_rate, qkv_bias, norm_cfg,
        layer_scale_init_value, layer_cfgs: As :class:`VisionTransformer`.
        **kwargs: Other :class:`VisionTransformer` arguments (``out_type``,
            ``with_cls_token``, ``frozen_stages``, ``init_cfg``, ...).

    Example:
        >>> import torch
        >>> arch = dict(embed_dims=64, num_layers=2, num_heads=4,
        ...             feedforward_channels=128)
        >>> model = TRARViT(arch, img_size=32, patch_size=8, orders=[0, 1])
        >>> model(torch.rand(2, 3, 32, 32))[0].shape
        torch.Size([2, 64])
    """

    def __init__(self,
                 arch='base',
                 img_size=224,
                 patch_size=16,
                 orders=(0, 1, 2, 3),
                 routed_layers=None,
                 routing='soft',
                 pooling='avg',
                 binarize=False,
                 straight_through=False,
                 routing_reduction=2,
                 attn_impl='auto',
                 proj_drop_rate=None,
                 drop_rate=0.,
                 drop_path_rate=0.,
                 qkv_bias=True,
                 norm_cfg=dict(type='LN', eps=1e-6),
                 layer_scale_init_value=0.,
                 layer_cfgs=dict(),
                 **kwargs):
        _check_divisible(img_size, patch_size)
        if routing not in ROUTING_MODES or pooling not in POOLING_MODES:
            raise ValueError(
                f'TRARViT: routing={routing!r}, pooling={pooling!r}; '
                f'choose routing from {ROUTING_MODES} and pooling from '
                f'{POOLING_MODES}')
        super().__init__(
            arch=arch,
            img_size=img_size,
            patch_size=patch_size,
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
            qkv_bias=qkv_bias,
            norm_cfg=norm_cfg,
            layer_scale_init_value=layer_scale_init_value,
            layer_cfgs=layer_cfgs,
            **kwargs)
        self.layer_orders = self._parse_orders(orders, routed_layers)
        union = sorted({k for lo in self.layer_orders if lo for k in lo} | {0})
        self._check_orders(union, img_size, patch_size)
        self.span_masks = SpanMasks(union, self.patch_resolution,
                                    self.num_extra_tokens)

        router_cfg = dict(
            routing=routing,
            pooling=pooling,
            binarize=binarize,
            straight_through=straight_through,
            reduction=routing_reduction)
        if isinstance(layer_cfgs, dict):
            layer_cfgs = [layer_cfgs] * self.num_layers
        # the same per-layer arguments VisionTransformer used
        dpr = np.linspace(0, drop_path_rate, self.num_layers)
        for i, layer_orders in enumerate(self.layer_orders):
            if layer_orders is None:
                continue
            cfg = dict(
                embed_dims=self.embed_dims,
                num_heads=self.arch_settings['num_heads'],
                feedforward_channels=self.
                arch_settings['feedforward_channels'],
                layer_scale_init_value=layer_scale_init_value,
                drop_rate=drop_rate,
                drop_path_rate=dpr[i],
                qkv_bias=qkv_bias,
                norm_cfg=norm_cfg)
            cfg.update(layer_cfgs[i])
            self.layers[i] = SpanRoutedEncoderLayer(
                orders=layer_orders,
                span_index=[union.index(k) for k in layer_orders],
                router_cfg=router_cfg,
                attn_impl=attn_impl,
                **cfg)
        if proj_drop_rate is not None:
            for layer in self.layers:  # plain ViT layers too
                layer.attn.proj_drop.p = float(proj_drop_rate)
        if self.frozen_stages > 0:
            self._freeze_stages()  # the new layers too

    def _parse_orders(self, orders, routed_layers):
        """One tuple of orders (or None = plain layer) per layer."""
        n = self.num_layers
        per_layer = (
            isinstance(orders, Sequence) and len(orders) > 0
            and all(o is None or isinstance(o, Sequence) for o in orders))
        if per_layer:
            if len(orders) != n:
                raise ValueError(
                    f'TRARViT: per-layer orders has {len(orders)} entries '
                    f'but the arch has {n} layers; give one list (or None) '
                    'per layer')
            layer_orders = [None if o is None else tuple(o) for o in orders]
        else:
            layer_orders = [tuple(orders)] * n
        if routed_layers is not None:
            routed = set()
            for i in routed_layers:
                if not -n <= i < n:
                    raise ValueError(
                        f'TRARViT: routed_layers has {i}, outside the '
                        f'{n} layers of the arch')
                routed.add(i % n)
            layer_orders = [
                lo if i in routed else None
                for i, lo in enumerate(layer_orders)
            ]
        for i, lo in enumerate(layer_orders):
            if lo is None:
                continue
            if not lo or len(set(lo)) != len(lo) or any(
                    not isinstance(k, int) or k < 0 for k in lo):
                raise ValueError(
                    f'TRARViT: orders {list(lo)} of layer {i} must be '
                    'distinct non-negative integers, e.g. [0, 1, 2, 3]')
        # a single global span is exactly a ViT layer
        return [None if lo in (None, (0, )) else lo for lo in layer_orders]

    def _check_orders(self, union, img_size, patch_size):
        side = max(self.patch_resolution)
        too_big = [k for k in union if k >= side]
        if too_big:
            raise ValueError(
                f'TRARViT: order {too_big[0]} spans the whole '
                f'{self.patch_resolution[0]}x{self.patch_resolution[1]} patch '
                f'grid (img_size {img_size} / patch_size {patch_size}), so it '
                f'equals order 0; use orders < {side}')

    @property
    def routers(self):
        """All :class:`SpanRouter` modules, in layer order."""
        return [m for m in self.modules() if isinstance(m, SpanRouter)]

    def set_tau(self, tau):
        """Set the Gumbel-softmax temperature of every router."""
        for router in self.routers:
            router.tau = float(tau)

    def forward(self, x):
        x, patch_resolution = embed_tokens(self, x)
        return tuple(
            self._format_output(x, patch_resolution)
            for i, x in iter_layers(self, x, patch_resolution)
            if i in self.out_indices)


def _check_divisible(img_size, patch_size):
    img, patch = to_2tuple(img_size), to_2tuple(patch_size)
    if img[0] % patch[0] or img[1] % patch[1]:
        raise ValueError(
            f'TRARViT: img_size {img_size} is not divisible by patch_size '
            f'{patch_size}, so the span grid would not match the patches; '
            f'use a multiple of the patch size, e.g. '
            f'{img[0] // patch[0] * patch[0]}')
