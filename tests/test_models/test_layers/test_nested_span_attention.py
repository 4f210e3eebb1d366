# Copyright (c) mmext contributors. All rights reserved.
"""Nested span attention (one score matrix) against the exact references:
the per-span SDPA path and the reference's stacked softmax maps, outputs and
gradients; the slot table, the underflow fallback, what backward saves."""
import math

import pytest
import torch
from mmengine.config import Config

from mmext.models.backbones import TRARViT
from mmext.models.layers import SpanRoutedAttention, build_span_masks
from mmext.models.layers.nested_span_attention import (NestedSpanAttention,
                                                       build_nested_span_table,
                                                       nested_span_attention)
from tests.conftest import ROOT

ARCH = dict(embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=48)


def stacked_maps(q, k, v, alpha, masks):
    """The reference formulation: every span's softmax map (-1e9 outside
    the span), stacked, mixed by einsum, times V."""
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    maps = [(s if m is None else s.masked_fill(~m, -1e9)).softmax(-1)
            for m in masks]
    return torch.einsum('bl,blhnm->bhnm', alpha, torch.stack(maps, 1)) @ v


CASES = [  # grid, orders, extra tokens
    ((4, 4), [0, 1, 2, 3], 1),
    ((3, 5), [2, 0, 1], 0),  # unsorted orders, no CLS
    ((5, 4), [1, 2], 1),  # no global span: keys outside get weight 0
    ((1, 3), [0, 1], 1),  # a window covering a whole (1 x 3) grid
    ((6, 6), [0, 3], 2),  # two extra tokens
]


@pytest.mark.parametrize('grid,orders,extra', CASES)
def test_outputs_and_gradients_equal_stacked_maps(grid, orders, extra):
    torch.manual_seed(0)
    masks = build_span_masks(grid, orders, extra)
    table = build_nested_span_table(masks, orders, range(len(orders)))
    T = masks.shape[-1]
    q, k, v = (
        torch.randn(2, 2, T, 8, dtype=torch.float64, requires_grad=True)
        for _ in range(3))
    alpha = torch.rand(2, len(orders), dtype=torch.float64).softmax(-1)
    alpha.requires_grad_()
    span = [None if o == 0 else masks[i] for i, o in enumerate(orders)]
    ref = stacked_maps(q, k, v, alpha, span)
    grad = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, (q, k, v, alpha), grad)
    out = nested_span_attention(q, k, v, alpha, table, 8**-0.5)
    assert out.dtype == torch.float64
    grads = torch.autograd.grad(out, (q, k, v, alpha), grad)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-10)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, atol=1e-10, rtol=1e-8)


def test_backward_against_finite_differences():
    masks = build_span_masks((3, 3), [0, 1, 2], 1)
    table = build_nested_span_table(masks, [0, 1, 2], [0, 1, 2])
    q, k, v = (
        torch.randn(1, 2, 10, 4, dtype=torch.float64, requires_grad=True)
        for _ in range(3))
    alpha = torch.rand(1, 3, dtype=torch.float64).softmax(-1)
    alpha.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda *t: NestedSpanAttention.apply(*t[:3], t[3][:, table.order],
                                             table, 0.5), (q, k, v, alpha))


def test_model_paths_agree_in_training():
    """Same weights, every routed layer: the nested path's outputs and every
    parameter gradient equal the per-span path's (float32, 1e-5)."""
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    results = []
    for impl in ('nested', 'per_span'):
        torch.manual_seed(0)
        model = TRARViT(
            ARCH,
            img_size=32,
            patch_size=8,
            orders=[0, 1, 2],
            out_type='raw',
            attn_impl=impl,
            drop_rate=0.1,
            drop_path_rate=0.1)
        model.train()
        torch.manual_seed(1)  # same dropout draws
        out = model(x)[0]
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum() \
            .backward()
        results.append((out, {
            n: p.grad
            for n, p in model.named_parameters() if p.grad is not None
        }))
    (out_n, grads_n), (out_p, grads_p) = results
    torch.testing.assert_close(out_n, out_p, atol=1e-5, rtol=1e-5)
    assert grads_n.keys() == grads_p.keys()
    assert any('router' in n for n in grads_n)
    for name in grads_n:
        # float32 sums of ~100-sized terms (cls_token, pos_embed): the
        # absolute tolerance follows the gradient's scale
        scale = max(1.0, grads_p[name].abs().max().item())
        torch.testing.assert_close(
            grads_n[name],
            grads_p[name],
            atol=1e-5 * scale,
            rtol=1e-4,
            msg=name)


def test_backward_keeps_no_token_by_token_tensor():
    attn = SpanRoutedAttention(32, 4, orders=[0, 1, 2], attn_impl='nested')
    masks = build_span_masks((5, 5), [0, 1, 2])
    x = torch.randn(2, 26, 32, requires_grad=True)
    shapes = []

    def pack(t):
        shapes.append(tuple(t.shape))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        attn(x, masks).sum().backward()
    assert shapes and not any(s[-2:] == (26, 26) for s in shapes), shapes
    # the per-span path with masks on CPU does keep maps (the reason for
    # the nested path)
    shapes.clear()
    attn.attn_impl = 'per_span'
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        attn(x, masks).sum().backward()
    assert any(s[-2:] == (26, 26) for s in shapes)


def test_underflow_falls_back_to_one_softmax_per_span():
    """A key scoring ~200 above a query's whole window would underflow the
    window's normaliser under one shared maximum: the layer then takes the
    per-span path, which is exact."""
    orders, grid = [0, 1], (4, 4)
    masks = build_span_masks(grid, orders, 1)
    table = build_nested_span_table(masks, orders, [0, 1])
    q = torch.zeros(1, 1, 17, 4)
    k = torch.zeros(1, 1, 17, 4)
    q[0, 0, 1, 0], k[0, 0, 16, 0] = 20., 20.  # patch 0 sees patch 15
    v = torch.randn(1, 1, 17, 4)
    alpha = torch.tensor([[0.5, 0.5]])
    assert nested_span_attention(q, k, v, alpha, table, 1.0) is None
    attn = SpanRoutedAttention(
        4, 1, orders=orders, attn_impl='nested', qkv_bias=False).eval()
    x = torch.zeros(1, 17, 4)
    x[0, 1, 0] = x[0, 16, 1] = 1.
    with torch.no_grad():  # q = 20 x_0 on patch 0, k = 20 x_1 on patch 15
        attn.qkv.weight.zero_()
        attn.qkv.weight[0, 0] = attn.qkv.weight[4, 1] = 40.
        attn.qkv.weight[8:].copy_(torch.randn(4, 4))
    attn.router.forward = lambda _: alpha
    out = attn(x, masks)
    assert torch.isfinite(out).all()
    attn.attn_impl = 'per_span'
    torch.testing.assert_close(out, attn(x, masks))


def test_table_slots_and_errors():
    masks = build_span_masks((4, 4), [0, 1, 2], 1)
    table = build_nested_span_table(masks, [2, 0, 1], [2, 0, 1])
    assert table.order.tolist() == [2, 0, 1]  # order 1, order 2, global
    assert table.num_local == 2 and table.has_global
    assert table.global_row.tolist() == [True] + [False] * 16
    # patch (1, 1) = token 6: ring 0 = CLS + its 3x3 window, ring 1 = the
    # rest of its 5x5 window clipped to the grid
    real = table.slot_real[6].bool()
    keys = table.slot_key[6][real]
    rings = table.slot_ring[real]
    assert sorted(
        keys[rings == 0].tolist()) == [0, 1, 2, 3, 5, 6, 7, 9, 10, 11]
    assert sorted(keys[rings == 1].tolist()) == [4, 8, 12, 13, 14, 15, 16]
    bad = masks.clone()
    bad[1, 5, 7] = True  # order 1 now sees a key order 2 does not
    bad[2, 5, 7] = False
    with pytest.raises(ValueError, match='not nested'):
        build_nested_span_table(bad, [0, 1, 2], [0, 1, 2])


def test_impl_choice_dropout_and_configs(monkeypatch):
    attn = SpanRoutedAttention(32, 4, orders=[0, 1])
    assert attn._use_nested(torch.device('cpu'))
    assert not attn._use_nested(torch.device('cuda'))
    with pytest.raises(ValueError, match="attn_impl='fast'"):
        SpanRoutedAttention(32, 4, orders=[0, 1], attn_impl='fast')
    # attention dropout in training: one SDPA (and dropout draw) per span
    calls = []
    monkeypatch.setattr(
        'mmext.models.layers.span_attention.nested_span_attention',
        lambda *a: calls.append(1))
    drop = SpanRoutedAttention(32, 4, orders=[0, 1], attn_drop=0.1).train()
    masks = build_span_masks((4, 4), [0, 1])
    drop(torch.randn(2, 17, 32), masks)
    assert not calls
    drop.eval()
    drop(torch.randn(2, 17, 32), masks)  # nested returned None: fallback
    assert calls == [1]
    # ViT-TRAR's recipe: no dropout after the attention projection
    model = TRARViT(
        ARCH,
        img_size=32,
        patch_size=8,
        orders=[[0, 1], None],
        drop_rate=0.1,
        proj_drop_rate=0.)
    assert [m.attn.proj_drop.p for m in model.layers] == [0., 0.]
    assert model.layers[0].ffn.layers[2].p == 0.1
    for path in sorted((ROOT / 'configs/trar_vit').glob('trar-*.py')):
        backbone = Config.fromfile(str(path)).model.backbone
        backbone = backbone.get('backbone', backbone)  # PartialFreeze
        assert backbone.proj_drop_rate == 0., path.name
