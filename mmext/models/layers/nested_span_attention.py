# Copyright (c) mmext contributors. All rights reserved.
"""TRAR's span mixture as one attention: nested spans share one score matrix.

TRAR's spans are nested (window k ⊂ window k + 1 ⊂ global), so for a query
with scores s and ``P = exp(s - max s)``

    Σ_l α_l · softmax_l(s)_j = P_j · Σ_{l ∋ j} α_l / Z_l = P_j · c_ring(j),

where ``Z_l`` is the sum of ``P`` over span l and ``ring(j)`` the innermost
span holding key j. One score matrix, one product with V; the normalisers
``Z_l`` are sums over the window keys only (at most (2k+1)² + CLS per
query), and every key outside the windows shares one coefficient, so the
(T, T) work is a few element-wise passes. :class:`NestedSpanAttention`
keeps no (T, T) tensor for backward (it recomputes ``P`` from q, k and the
row maxima, like flash attention), so training saves about what a ViT with
fused SDPA saves.

Upstream has nothing like it: the TRAR reference stacks all L softmax maps
(B, L, H, T, T) and mixes them by einsum; PyTorch's SDPA takes one mask per
call, so the per-span path costs L attention calls.
"""
import weakref
from typing import NamedTuple

import torch
from torch.autograd.function import once_differentiable

__all__ = [
    'NestedSpanTable', 'build_nested_span_table', 'nested_span_attention'
]

# Z below this (all window scores ~69 below the row maximum in float32)
# would lose precision: the caller falls back to one softmax per span.
_TINY = 1e-30


class NestedSpanTable(NamedTuple):
    """Where each query's window keys are, for one layer's spans.

    Slots are grouped by ring (the innermost span holding the key), so a
    slot's ring is the same for every query; a query with fewer keys in a
    ring (grid border) pads that ring's block with ``slot_real`` 0.

    Attributes:
        order (Tensor): (L,) long: the layer's spans sorted innermost first
            (local windows by size, then global), as indices into its
            routing weights.
        num_local (int): n, the number of window (non-global) spans.
        has_global (bool): Whether the layer has the global span.
        slot_key (Tensor): (T, S) long: key index of every window slot.
        slot_real (Tensor): (T, S) float: 1 for a real key, 0 for padding.
        slot_ring (Tensor): (S,) long: ring of every slot.
        slot_in (Tensor): (S, n) float: 1 where a slot's ring lies in
            window span l.
        global_row (Tensor): (T,) bool: rows every span sees whole (CLS,
            or a window covering the grid): all their keys are ring 0.
    """
    order: torch.Tensor
    num_local: int
    has_global: bool
    slot_key: torch.Tensor
    slot_real: torch.Tensor
    slot_ring: torch.Tensor
    slot_in: torch.Tensor
    global_row: torch.Tensor


def build_nested_span_table(masks, orders, span_index):
    """The :class:`NestedSpanTable` of a layer from its bool span masks.

    Args:
        masks (Tensor): bool (L_all, T, T), True = attend (see
            :func:`build_span_masks`).
        orders (Sequence[int]): The layer's span orders (0 = global).
        span_index (Sequence[int]): Row of ``masks`` for each order.

    Raises:
        ValueError: if the layer's window masks are not nested.
    """
    local = sorted((k, i) for i, k in enumerate(orders) if k != 0)
    has_global = 0 in orders
    order = [i for _, i in local] + ([orders.index(0)] if has_global else [])
    n = len(local)
    local_masks = masks[[span_index[i] for _, i in local]]  # n T T
    for inner, outer in zip(local_masks[:-1], local_masks[1:]):
        if bool((inner & ~outer).any()):
            raise ValueError(
                f'nested span attention: the masks of orders {orders} are '
                'not nested (window k inside window k + 1); build them with '
                "build_span_masks or use attn_impl='per_span'")
    ring = (~local_masks).sum(0)  # T T: innermost span holding the key
    global_row = (ring == 0).all(1)
    keys, real, rings = [], [], []
    for r in range(n):
        inside = (ring == r) & ~global_row[:, None]
        count = inside.sum(1)
        width = int(count.max()) if len(count) else 0
        if width == 0:
            continue
        # a stable sort puts each row's ring-r keys first, in key order
        keys.append(
            torch.sort((~inside).to(torch.uint8), dim=1,
                       stable=True).indices[:, :width])
        real.append(torch.arange(width, device=masks.device) < count[:, None])
        rings += [r] * width
    if not keys:  # every row global: one dummy slot
        keys = [torch.zeros_like(ring[:, :1])]
        real = [torch.zeros_like(global_row[:, None])]
        rings = [0]
    slot_ring = torch.as_tensor(rings, device=masks.device)
    levels = torch.arange(n, device=masks.device)
    return NestedSpanTable(
        torch.as_tensor(order, device=masks.device), n, has_global,
        torch.cat(keys, 1),
        torch.cat(real, 1).float(), slot_ring,
        (slot_ring[:, None] <= levels).float(), global_row)


class NestedSpanTableCache:
    """Tables per bool-mask tensor (weakly referenced) and span subset."""

    def __init__(self):
        self._tables = {}

    def get(self, masks, orders, span_index):
        key = (id(masks), tuple(orders), tuple(span_index))
        hit = self._tables.get(key)
        if hit is not None and hit[0]() is masks:
            return hit[1]
        # drop entries of dead mask tensors before adding one
        self._tables = {
            k: v
            for k, v in self._tables.items() if v[0]() is not None
        }
        table = build_nested_span_table(masks, orders, span_index)
        self._tables[key] = (weakref.ref(masks), table)
        return table

    def __getstate__(self):
        return {'_tables': {}}  # weak references do not pickle


class _Underflow(Exception):
    """A span normaliser underflowed (scores far below the row maximum)."""


def _suffix(w, table):
    """c_r = Σ_{l >= r} w_l (r = 0..n) and the coefficient of the keys
    outside every window, per row (b h t)."""
    L = w.size(-1)
    # suffix sums as a product with a 0/1 triangle: no cancellation (w spans
    # orders of magnitude), no flips of strided tensors
    upper = torch.ones(L, L, dtype=w.dtype, device=w.device).tril()
    c = torch.matmul(w, upper)
    if not table.has_global:  # keys outside every window: weight 0
        c = torch.cat([c, c.new_zeros(c.shape[:-1] + (1, ))], -1)
    n = table.num_local
    outer = torch.where(table.global_row[:, None], c[..., :1], c[..., n:n + 1])
    return c, outer


def _span_sums(full, win, table):
    """Sums over every span (b h t L), innermost first: window spans from
    the slot values ``win`` (b h t S, padding 0), the global span (and the
    global rows) from the row sums ``full`` (b h t)."""
    local = torch.matmul(win, table.slot_in.to(win.dtype))
    local = torch.where(table.global_row[:, None], full[..., None], local)
    if table.has_global:
        local = torch.cat([local, full[..., None]], -1)
    return local


def _operands(q, k, v, scale):
    """Contiguous q·scale, k, v: views of the fused qkv projection would
    make every batched matmul copy (and transpose) them again."""
    q = q.clone(memory_format=torch.contiguous_format).mul_(scale)
    return q, k.contiguous(), v.contiguous()


def _probs(q, k, m=None):
    """P = exp(q kᵀ - m) (b h t t) and the row maxima m."""
    p = torch.matmul(q, k.transpose(-2, -1))
    if m is None:
        m = p.amax(-1, keepdim=True)
    return p.sub_(m).exp_(), m


class NestedSpanAttention(torch.autograd.Function):
    """Σ_l α_l softmax_l(q kᵀ · scale) v for nested spans.

    Saves q, k, v (views of the qkv projection autograd keeps anyway), the
    row maxima and the span normalisers: no (T, T) tensor. The (T, T) work
    is in place; window slots are gathered, corrected and added back.
    """

    @staticmethod
    def forward(ctx, q, k, v, alpha, table, scale):
        B, H, T, _ = q.shape
        key = table.slot_key.expand(B, H, T, table.slot_key.size(1))
        qs, kc, vc = _operands(q, k, v, scale)
        p, m = _probs(qs, kc)
        p_win = p.gather(-1, key).mul_(table.slot_real)
        z = _span_sums(p.sum(-1), p_win, table)  # b h t L
        if bool((z < _TINY).any()):
            raise _Underflow
        a = alpha[:, None, None, :]
        c, outer = _suffix(a / z, table)
        # A = P ⊙ c_ring: outer coefficient everywhere, window slots raised
        # (c_ring >= outer: no cancellation)
        rise = p_win.mul_(c[..., table.slot_ring] - outer)
        attn = p.mul_(outer).scatter_add_(-1, key, rise)
        out = torch.matmul(attn, vc)
        ctx.save_for_backward(q, k, v, alpha, m, z)
        ctx.table, ctx.scale = table, scale
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out):
        q, k, v, alpha, m, z = ctx.saved_tensors
        table, scale = ctx.table, ctx.scale
        B, H, T, _ = q.shape
        key = table.slot_key.expand(B, H, T, table.slot_key.size(1))
        qs, kc, vc = _operands(q, k, v, scale)
        d_out = d_out.contiguous()
        p, _ = _probs(qs, kc, m)
        pg = torch.matmul(d_out, vc.transpose(-2, -1))  # g = dL/dA
        p_win = p.gather(-1, key).mul_(table.slot_real)
        pg_win = pg.gather(-1, key).mul_(p_win)
        pg.mul_(p)  # P ⊙ g
        # δ_l = Σ_j softmax_l(s)_j g_j: dL/dα_l summed over heads, queries
        delta = _span_sums(pg.sum(-1), pg_win, table) / z
        a = alpha[:, None, None, :]
        c, outer = _suffix(a / z, table)
        e, e_outer = _suffix(a * delta / z, table)
        # dL/ds = P ⊙ (c_ring g - e_ring), e_r = Σ_{l>=r} α_l δ_l / Z_l:
        # outer coefficients everywhere, then the window slots corrected
        c_rise = c[..., table.slot_ring] - outer
        fix = pg_win.mul_(c_rise).sub_(p_win *
                                       (e[..., table.slot_ring] - e_outer))
        d_s = pg.mul_(outer).addcmul_(p, e_outer, value=-1)
        d_s.scatter_add_(-1, key, fix)
        attn = p.mul_(outer).scatter_add_(-1, key, p_win.mul_(c_rise))
        d_v = torch.matmul(attn.transpose(-2, -1), d_out)
        d_q = torch.matmul(d_s, kc).mul_(scale)
        d_k = torch.matmul(d_s.transpose(-2, -1), qs)
        return d_q, d_k, d_v, delta.sum((1, 2)), None, None


def nested_span_attention(q, k, v, alpha, table, scale):
    """Mix nested spans with one score matrix (at least float32 maths).

    Args:
        q, k, v (Tensor): (B, H, T, d).
        alpha (Tensor): (B, L) routing weights, one per span of the layer in
            the layer's order (``table.order`` sorts them).
        table (NestedSpanTable): From :func:`build_nested_span_table`.
        scale (float): Score scale, usually d ** -0.5.

    Returns:
        Tensor | None: (B, H, T, d) in the dtype of ``v``; None when a
        span's normaliser underflows (window scores ~69 below the row
        maximum), for the caller to take one softmax per span instead.
    """
    dtype = v.dtype
    with torch.autocast(q.device.type, enabled=False):
        # half precision in, float32 maths (float64 stays float64)
        work = torch.promote_types(v.dtype, torch.float32)
        args = [t.to(work) for t in (q, k, v, alpha[:, table.order])]
        try:
            out = NestedSpanAttention.apply(*args, table, scale)
        except _Underflow:
            return None
    return out.to(dtype)
