# Copyright (c) mmext contributors. All rights reserved.
"""Span-routed self-attention (TRAR) on top of mmpretrain's ViT blocks.

The TRAR reference materialises a (B, L, H, N, N) stack of attention maps,
mixes them with the routing weights and multiplies by V. Two exact
alternatives are implemented here:

* ``'nested'`` (:mod:`.nested_span_attention`): the spans are nested, so the
  mixture is one score matrix with ring-wise coefficients, one product with
  V and no (N, N) tensor saved for backward; the fastest on CPU.
* ``'per_span'``: by linearity Σ_l α_l · (A_l V), each span one fused
  ``F.scaled_dot_product_attention`` call with a bool mask (True = attend),
  the outputs mixed. Used for attention dropout in training, as the
  fallback of the nested path, and on GPU (fused SDPA kernels).

Neither overflows under fp16/bf16 autocast the way the reference's
``masked_fill(-1e9)`` does.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.backbones.vision_transformer import \
    TransformerEncoderLayer
from mmpretrain.models.utils import MultiheadAttention

from .nested_span_attention import NestedSpanTableCache, nested_span_attention
from .routing import SpanRouter

__all__ = [
    'build_span_masks', 'SpanMasks', 'SpanRoutedAttention',
    'SpanRoutedEncoderLayer', 'ATTN_IMPLS'
]

ATTN_IMPLS = ('auto', 'nested', 'per_span')


def build_span_masks(grid_hw, orders, num_extra_tokens=1, device=None):
    """Bool attention masks (True = attend) for TRAR's span orders.

    Order 0 is global attention; order k > 0 lets the query patch at grid
    (i, j) attend the keys with ``|x - i| <= k`` and ``|y - j| <= k`` (a
    (2k+1)² window clipped at the borders). Extra tokens (CLS) are never
    masked: their rows and columns attend everything, as in ViT-TRAR.

    Args:
        grid_hw (tuple[int, int]): Patch grid (H, W).
        orders (Sequence[int]): Span orders.
        num_extra_tokens (int): Tokens before the patches. Defaults to 1.
        device (torch.device, optional): Where to build the masks.

    Returns:
        Tensor: bool of shape (L, T, T), T = H·W + num_extra_tokens.

    Example:
        >>> build_span_masks((4, 4), [0, 1]).shape
        torch.Size([2, 17, 17])
    """
    h, w = grid_hw
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device),
        torch.arange(w, device=device),
        indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    # Chebyshev distance between every pair of patches: (N, N)
    dist = torch.maximum((ys[:, None] - ys[None]).abs(),
                         (xs[:, None] - xs[None]).abs())
    k = torch.as_tensor(list(orders), device=device).view(-1, 1, 1)
    patch = (dist[None] <= k) | (k == 0)
    e, n = num_extra_tokens, h * w
    masks = torch.ones(
        len(orders), n + e, n + e, dtype=torch.bool, device=device)
    masks[:, e:, e:] = patch
    return masks


class SpanMasks(nn.Module):
    """Span masks for the configured grid as a buffer, other grids cached.

    The masks follow ``.to(device)`` (non-persistent buffer: no new
    state-dict keys) and an input of another resolution builds its masks once
    per (grid, device) instead of in every forward.

    Args:
        orders (Sequence[int]): Span orders (the union over layers).
        grid_hw (tuple[int, int]): Patch grid of ``img_size``.
        num_extra_tokens (int): Tokens before the patches.
    """

    def __init__(self, orders, grid_hw, num_extra_tokens):
        super().__init__()
        self.orders = tuple(orders)
        self.grid_hw = tuple(grid_hw)
        self.num_extra_tokens = num_extra_tokens
        self.register_buffer(
            'masks',
            build_span_masks(grid_hw, orders, num_extra_tokens),
            persistent=False)
        self._cache = {}

    def forward(self, grid_hw):
        grid_hw = tuple(grid_hw)
        if grid_hw == self.grid_hw:
            return self.masks
        key = (grid_hw, self.masks.device)
        if key not in self._cache:
            self._cache[key] = build_span_masks(grid_hw, self.orders,
                                                self.num_extra_tokens,
                                                self.masks.device)
        return self._cache[key]


class SpanRoutedAttention(MultiheadAttention):
    """Multi-head self-attention mixing several attention spans per sample.

    TRAR (Zhou et al., ICCV 2021): ``Σ_l α_l · softmax(QKᵀ/√d | span_l) V``
    with α from a :class:`SpanRouter` on the block input. The parameters of
    mmpretrain's :class:`MultiheadAttention` (``qkv``, ``proj``) keep their
    names, so ViT checkpoints load unchanged; ``router.*`` is the only new
    key. With one order there is no router and the layer is a fixed-span
    attention (order 0: exactly mmpretrain's attention).

    Args:
        embed_dims (int): Embedding dimension.
        num_heads (int): Attention heads.
        orders (Sequence[int]): Span orders of this layer.
        span_index (Sequence[int], optional): Rows of the mask tensor given
            to :meth:`forward` for each order. Defaults to ``range(L)``.
        router_cfg (dict, optional): Keyword arguments of
            :class:`SpanRouter` (``routing``, ``pooling``, ``binarize``, ...).
        attn_impl (str): How spans are mixed: ``'nested'`` (one score
            matrix), ``'per_span'`` (one SDPA call per span) or ``'auto'``
            (nested on CPU, per-span elsewhere). Both are exact; attention
            dropout in training always takes the per-span path. Defaults to
            ``'auto'``.
        **kwargs: Other arguments of mmpretrain's ``MultiheadAttention``
            (``v_shortcut`` and ``qk_scale`` are not supported).

    Example:
        >>> attn = SpanRoutedAttention(64, 4, orders=[0, 1])
        >>> masks = build_span_masks((4, 4), [0, 1])
        >>> attn(torch.rand(2, 17, 64), masks).shape
        torch.Size([2, 17, 64])
    """

    def __init__(self,
                 embed_dims,
                 num_heads,
                 orders,
                 span_index=None,
                 router_cfg=None,
                 attn_impl='auto',
                 **kwargs):
        if attn_impl not in ATTN_IMPLS:
            raise ValueError(f'SpanRoutedAttention: attn_impl={attn_impl!r} '
                             f'is not one of {ATTN_IMPLS}')
        if kwargs.get('v_shortcut') or kwargs.get('qk_scale') is not None:
            raise ValueError('SpanRoutedAttention: v_shortcut and qk_scale '
                             'are not supported; remove them from the config')
        super().__init__(embed_dims, num_heads, **kwargs)
        self.orders = tuple(int(k) for k in orders)
        self.span_index = tuple(
            span_index if span_index is not None else range(len(self.orders)))
        self.router = SpanRouter(embed_dims, len(self.orders),
                                 **(router_cfg
                                    or {})) if len(self.orders) > 1 else None
        self.attn_impl = attn_impl
        self._tables = NestedSpanTableCache()

    def _span(self, q, k, v, mask, dropout_p, rows=None):
        """SDPA for one span, on the batch rows ``rows`` (all if None)."""
        if rows is not None:
            q, k, v = q[rows], k[rows], v[rows]
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout_p)

    def forward(self, x, span_masks):
        """x: (B, N, C); span_masks: bool (L_all, N, N). Returns (B, N, C)."""
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads,
                                  self.head_dims).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # b h n d
        dropout_p = self.attn_drop if self.training else 0.
        masks = [
            None if order == 0 else span_masks[i]
            for order, i in zip(self.orders, self.span_index)
        ]
        if self.router is None:
            out = self._span(q, k, v, masks[0], dropout_p)
        else:
            alpha = self.router(x)  # b l
            out = None
            if dropout_p == 0 and self._use_nested(x.device):
                table = self._tables.get(span_masks, self.orders,
                                         self.span_index)
                out = nested_span_attention(q, k, v, alpha, table,
                                            self.head_dims**-0.5)
            if out is None:
                out = self._mix(q, k, v, masks, alpha, dropout_p)
        x = out.transpose(1, 2).reshape(B, N, self.embed_dims)
        x = self.proj(x)
        return self.out_drop(self.gamma1(self.proj_drop(x)))

    def _use_nested(self, device):
        if torch.jit.is_tracing():
            # the nested path is a custom autograd function that tracers
            # (mmengine's FLOP counter, get_flops) cannot follow
            return False
        if self.attn_impl == 'auto':
            # CPU measured (benchmarks/trar_vit_cost.py); elsewhere the fused
            # SDPA kernels are kept (not measured here)
            return device.type == 'cpu'
        return self.attn_impl == 'nested'

    def _mix(self, q, k, v, masks, alpha, dropout_p):
        """The per-span path: Σ_l α_l · SDPA_l, skipping spans whose weights
        are exactly zero when no gradient is needed (binarized routing at
        inference)."""
        sparse = not torch.is_grad_enabled() and bool((alpha == 0).any())
        out = None
        for span, mask in enumerate(masks):
            a = alpha[:, span]
            if sparse:
                rows = a.nonzero().flatten()
                if rows.numel() == 0:
                    continue
                o = self._span(q, k, v, mask, dropout_p, rows)
                o = o * a[rows].view(-1, 1, 1, 1).to(o.dtype)
                if out is None:
                    out = q.new_zeros(q.shape[:-1] + v.shape[-1:])
                out = out.index_add(0, rows, o.to(out.dtype))
                continue
            o = self._span(q, k, v, mask, dropout_p)
            o = o * a.view(-1, 1, 1, 1).to(o.dtype)
            out = o if out is None else out + o
        return out


class SpanRoutedEncoderLayer(TransformerEncoderLayer):
    """mmpretrain's ViT encoder layer with :class:`SpanRoutedAttention`.

    Same pre-norm block (``ln1 -> attn -> ln2 -> ffn``) and state-dict keys as
    :class:`mmpretrain.models.backbones.vision_transformer.
    TransformerEncoderLayer`; the router sees the ``ln1`` output, like the
    ViT-TRAR reference.

    Args:
        embed_dims (int): Feature dimension.
        num_heads (int): Attention heads.
        feedforward_channels (int): FFN hidden dimension.
        orders (Sequence[int]): Span orders of this layer.
        span_index (Sequence[int], optional): See
            :class:`SpanRoutedAttention`.
        router_cfg (dict, optional): See :class:`SpanRoutedAttention`.
        attn_impl (str): See :class:`SpanRoutedAttention`. Defaults to
            ``'auto'``.
        **kwargs: Other arguments of ``TransformerEncoderLayer``.

    Example:
        >>> layer = SpanRoutedEncoderLayer(64, 4, 128, orders=[0, 2])
        >>> masks = build_span_masks((4, 4), [0, 2])
        >>> layer(torch.rand(2, 17, 64), masks).shape
        torch.Size([2, 17, 64])
    """

    def __init__(self,
                 embed_dims,
                 num_heads,
                 feedforward_channels,
                 orders,
                 span_index=None,
                 router_cfg=None,
                 attn_impl='auto',
                 layer_scale_init_value=0.,
                 drop_rate=0.,
                 attn_drop_rate=0.,
                 drop_path_rate=0.,
                 qkv_bias=True,
                 **kwargs):
        super().__init__(
            embed_dims,
            num_heads,
            feedforward_channels,
            layer_scale_init_value=layer_scale_init_value,
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate,
            qkv_bias=qkv_bias,
            **kwargs)
        # same arguments as the parent's MultiheadAttention
        self.attn = SpanRoutedAttention(
            embed_dims,
            num_heads,
            orders=orders,
            span_index=span_index,
            router_cfg=router_cfg,
            attn_impl=attn_impl,
            attn_drop=attn_drop_rate,
            proj_drop=drop_rate,
            dropout_layer=dict(type='DropPath', drop_prob=drop_path_rate),
            qkv_bias=qkv_bias,
            layer_scale_init_value=layer_scale_init_value)

    def forward(self, x, span_masks):
        x = x + self.attn(self.ln1(x), span_masks)
        return self.ffn(self.ln2(x), identity=x)
