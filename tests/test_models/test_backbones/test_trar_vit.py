# Copyright (c) mmext contributors. All rights reserved.
"""TRARViT: ViT parity, span masks, routed attention vs the reference maths,
routing modes and errors (tiny archs: embed 64, depth 2, img 32, patch 8)."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.models import VisionTransformer

from mmext.models.backbones import TRARViT
from mmext.models.layers import (SpanRoutedAttention, build_span_masks,
                                 gumbel_softmax)

ARCH = dict(embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=96)


def tiny(cls=TRARViT, **kwargs):
    kwargs.setdefault('img_size', 32)
    kwargs.setdefault('patch_size', 8)
    torch.manual_seed(0)
    return cls(ARCH, **kwargs)


def reference_masks(scale_h, scale_w, order):
    """The reference's getImgMasks loops (True = masked), any grid."""
    n = scale_h * scale_w
    masks = torch.ones(n, n, dtype=torch.bool)
    for i in range(scale_h):
        for j in range(scale_w):
            for x in range(i - order, i + order + 1):
                for y in range(j - order, j + order + 1):
                    if 0 <= x < scale_h and 0 <= y < scale_w:
                        masks[i * scale_w + j, x * scale_w + y] = False
    return masks


@pytest.mark.parametrize('grid', [(4, 4), (5, 7), (1, 3)])
@pytest.mark.parametrize('extra', [0, 1])
def test_span_masks_match_brute_force(grid, extra):
    orders = [0, 1, 2, 3]
    masks = build_span_masks(grid, orders, num_extra_tokens=extra)
    n = grid[0] * grid[1]
    assert masks.shape == (4, n + extra, n + extra)
    assert masks.dtype == torch.bool
    assert masks[0].all()
    for i, k in enumerate(orders[1:], 1):
        # CLS row / column never masked
        assert masks[i, :extra].all() and masks[i, :, :extra].all()
        expected = ~reference_masks(*grid, k)
        assert torch.equal(masks[i, extra:, extra:], expected)


def _naive_trar(x, attn, alpha, orders, grid, extra):
    """The reference formulation written out: all L maps materialised with
    -1e9 masking of the patch block, mixed by einsum, then times V."""
    B, N, C = x.shape
    H = attn.num_heads
    qkv = F.linear(x, attn.qkv.weight, attn.qkv.bias)
    q, k, v = qkv.reshape(B, N, 3, H, C // H).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-2, -1) / math.sqrt(C // H)
    maps = []
    for order in orders:
        s = scores.clone()
        if order > 0:
            masked = reference_masks(*grid, order)
            s[:, :, extra:, extra:] = s[:, :, extra:,
                                        extra:].masked_fill(masked, -1e9)
        maps.append(F.softmax(s, dim=-1))
    att = torch.einsum('bl,blhnm->bhnm', alpha, torch.stack(maps, 1))
    out = (att @ v).transpose(1, 2).reshape(B, N, C)
    return F.linear(out, attn.proj.weight, attn.proj.bias)


@pytest.mark.parametrize('impl', ['nested', 'per_span'])
@pytest.mark.parametrize('extra,grid', [(1, (4, 4)), (0, (3, 5))])
def test_fast_form_equals_reference_formulation(extra, grid, impl):
    torch.manual_seed(1)
    orders = [0, 1, 2, 3]
    attn = SpanRoutedAttention(32, 4, orders=orders, attn_impl=impl).eval()
    x = torch.randn(3, grid[0] * grid[1] + extra, 32)
    alpha = torch.rand(3, 4).softmax(-1)
    attn.router.forward = lambda _: alpha  # random routing weights
    masks = build_span_masks(grid, orders, extra)
    out = attn(x, masks)
    expected = _naive_trar(x, attn, alpha, orders, grid, extra)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    # the per-layer subset of a larger mask table
    sub = SpanRoutedAttention(
        32, 4, orders=[2, 0], span_index=[2, 0], attn_impl=impl).eval()
    sub.qkv.load_state_dict(attn.qkv.state_dict())
    sub.proj.load_state_dict(attn.proj.state_dict())
    sub.router.forward = lambda _: alpha[:, [2, 0]]
    torch.testing.assert_close(
        sub(x, masks),
        _naive_trar(x, attn, alpha[:, [2, 0]], [2, 0], grid, extra),
        atol=1e-5,
        rtol=1e-5)


@pytest.mark.parametrize('out_type',
                         ['cls_token', 'raw', 'featmap', 'avg_featmap'])
def test_orders_0_equals_mmpretrain_vit(out_type):
    vit = tiny(VisionTransformer, out_type=out_type, drop_path_rate=0.1)
    trar = tiny(orders=[0], out_type=out_type, drop_path_rate=0.1)
    assert set(trar.state_dict()) == set(vit.state_dict())
    trar.load_state_dict(vit.state_dict())
    vit.eval(), trar.eval()
    for shape in [(2, 3, 32, 32), (2, 3, 40, 56)]:  # + pos-embed resize
        x = torch.rand(*shape)
        assert torch.equal(trar(x)[0], vit(x)[0])


def test_vit_checkpoint_loads_and_routers_are_the_only_new_keys():
    vit = tiny(VisionTransformer)
    trar = tiny(orders=[0, 1, 2], routed_layers=[-1])
    missing, unexpected = trar.load_state_dict(vit.state_dict(), strict=False)
    assert not unexpected
    assert missing and all('.attn.router.' in k for k in missing)
    assert all(k.startswith('layers.1.') for k in missing)  # layer 0 plain
    for k, v in vit.state_dict().items():
        assert torch.equal(trar.state_dict()[k], v)
    # layer 0 is not routed: identical to ViT's layer 0 on the same input
    x = torch.randn(2, 17, 64)
    assert torch.equal(trar.layers[0](x), vit.layers[0](x))


def test_routed_model_non_square_input_and_mask_cache():
    model = tiny(orders=[0, 1], out_type='featmap')
    model.eval()
    x = torch.rand(2, 3, 40, 56)  # grid 5 x 7
    out = model(x)[0]
    assert out.shape == (2, 64, 5, 7)
    masks = model.span_masks((5, 7))
    assert masks is model.span_masks((5, 7))  # built once per grid
    assert torch.equal(masks[1, 1:, 1:], ~reference_masks(5, 7, 1))
    assert model.span_masks((4, 4)) is model.span_masks.masks
    assert 'span_masks.masks' not in model.state_dict()


def test_soft_routing_gradients_reach_the_router():
    model = tiny(orders=[0, 1, 2], out_type='raw')
    model.train()
    out = model(torch.rand(2, 3, 32, 32))[0]
    # not .sum(): the final LayerNorm makes that constant
    (out * torch.randn_like(out)).sum().backward()
    for router in model.routers:
        assert all(p.grad is not None and p.grad.abs().sum() > 0
                   for p in router.parameters())


def test_last_layer_routing_cannot_change_the_cls_output():
    """CLS rows attend globally in every span (as ViT-TRAR), so with
    out_type='cls_token' the last layer's router gets no gradient."""
    model = tiny(orders=[0, 1, 2])
    model.train()
    out = model(torch.rand(2, 3, 32, 32))[0]
    (out * torch.randn_like(out)).sum().backward()
    first, last = model.routers
    first_grad = first.mlp[0].weight.grad.abs().sum()
    assert first_grad > 0
    # zero up to rounding (the routing weights sum to 1 up to an ulp)
    assert last.mlp[0].weight.grad.abs().sum() < 1e-6 * first_grad


def test_hard_routing_noise_only_in_training_and_binarize():
    model = tiny(orders=[0, 1, 2], routing='hard', binarize=True)
    model.set_tau(1.0)
    router = model.routers[0]
    x = torch.randn(4, 17, 64)
    router.train()
    a1, a2 = router(x), router(x)
    assert not torch.allclose(a1, a2)  # Gumbel noise
    assert not ((a1 == 0) | (a1 == 1)).all()  # soft in training
    router.eval()
    b1, b2 = router(x), router(x)
    assert torch.equal(b1, b2)
    assert ((b1 == 0) |
            (b1 == 1)).all() and torch.equal(b1.sum(-1), torch.ones(4))
    logits = router.mlp(router.pool(x))
    assert torch.equal(b1.argmax(-1), logits.argmax(-1))
    # without binarize, eval weights are the noiseless tempered softmax
    router.binarize = False
    router.tau = 0.5
    torch.testing.assert_close(
        router(x), (logits.log_softmax(-1) / 0.5).softmax(-1))


def test_straight_through_forwards_one_hot_with_soft_gradients():
    model = tiny(orders=[0, 1], routing='hard', straight_through=True)
    model.train()
    router = model.routers[0]
    x = torch.randn(3, 17, 64)
    alpha = router(x)
    assert ((alpha == 0) | (alpha == 1)).all()
    (alpha * torch.randn_like(alpha)).sum().backward()
    assert router.mlp[2].weight.grad.abs().sum() > 0


def test_gumbel_softmax_samples_follow_the_softmax():
    torch.manual_seed(0)
    logits = torch.tensor([[1.0, 0.0, -1.0]]).expand(20000, 3)
    picks = gumbel_softmax(logits, tau=0.1).argmax(-1)
    freq = torch.bincount(picks, minlength=3).float() / len(picks)
    torch.testing.assert_close(freq, logits[0].softmax(-1), atol=0.015, rtol=0)


@pytest.mark.parametrize('impl', ['nested', 'per_span'])
def test_binarized_inference_skips_spans_but_matches_dense(impl):
    model = tiny(orders=[0, 1, 2, 3], binarize=True, attn_impl=impl)
    model.eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        sparse = model(x)[0]
    dense = model(x)[0]  # grad enabled: every span computed
    torch.testing.assert_close(sparse, dense.detach(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('impl', ['nested', 'per_span'])
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_autocast_is_finite_and_close(dtype, impl):
    """Bool masks: nothing like the reference's -1e9 (inf in fp16)."""
    model = tiny(orders=[0, 1, 2, 3], attn_impl=impl)
    model.eval()
    x = torch.rand(2, 3, 32, 32)
    ref = model(x)[0]
    with torch.autocast('cpu', dtype=dtype):
        out = model(x)[0]
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.05)


def test_frozen_stages_freeze_routed_layers_and_no_cls_token():
    model = tiny(orders=[0, 1], frozen_stages=1)
    assert not any(p.requires_grad for p in model.layers[0].parameters())
    assert all(p.requires_grad for p in model.layers[1].parameters())
    no_cls = tiny(orders=[0, 1], with_cls_token=False, out_type='avg_featmap')
    assert no_cls.span_masks.masks.shape == (2, 16, 16)
    assert no_cls(torch.rand(2, 3, 32, 32))[0].shape == (2, 64)


@pytest.mark.parametrize('kwargs,match', [
    (dict(orders=[0, 4]), r'order 4 spans the whole 4x4 patch grid'),
    (dict(img_size=36), r'img_size 36 is not divisible by patch_size 8'),
    (dict(orders=[[0, 1]]), r'per-layer orders has 1 entries'),
    (dict(orders=[0, 1, 1]), r'distinct non-negative'),
    (dict(routed_layers=[5]), r'routed_layers has 5'),
    (dict(routing='gumbel'), r"routing='gumbel'"),
])
def test_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kwargs)


def test_per_layer_orders():
    model = tiny(orders=[None, [0, 2]])
    assert model.layer_orders == [None, (0, 2)]
    assert len(model.routers) == 1
    assert model.routers[0].mlp[2].out_features == 2


def test_pooling_modes():
    from mmext.models.layers import SpanRouter
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8)
    fc = SpanRouter(8, 3, pooling='fc')
    torch.nn.init.zeros_(fc.score.weight)  # equal scores: the mean
    torch.testing.assert_close(fc.pool(x), x.mean(1))
    att = SpanRouter(8, 3, pooling='attention').eval()
    w = att.score(x).softmax(1)
    expected = F.layer_norm(
        att.merge((w * x).sum(1)), (8, ), att.norm.weight, att.norm.bias, 1e-6)
    torch.testing.assert_close(att.pool(x), expected)
    assert torch.equal(SpanRouter(8, 3).pool(x), x.mean(1))


def test_single_local_order_is_a_fixed_window_without_router():
    model = tiny(orders=[[2], None])
    assert model.routers == []
    attn = model.layers[0].attn
    x = torch.randn(2, 17, 64)
    masks = model.span_masks((4, 4))
    torch.testing.assert_close(
        attn(x, masks),
        _naive_trar(x, attn, torch.ones(2, 1), [2], (4, 4), 1),
        atol=1e-5,
        rtol=1e-5)
