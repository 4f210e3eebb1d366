# Copyright (c) mmext contributors. All rights reserved.
import pytest
import torch
from mmpretrain.models import ResNet, VisionTransformer

from mmext.models.necks import VisualTokenNeck


def tiny_vit(out_type):
    torch.manual_seed(0)
    vit = VisionTransformer(
        arch=dict(
            embed_dims=24, num_layers=1, num_heads=2, feedforward_channels=24),
        img_size=32,
        patch_size=8,
        out_type=out_type)
    vit.eval()  # mmpretrain's ViT.train() returns None
    return vit


def test_cnn_views_concatenated_in_r2gen_order():
    # R2Gen: per view patch_feats.reshape(B, C, -1).permute(0, 2, 1), then
    # torch.cat((view0, view1), dim=1)
    fmap = torch.randn(3 * 2, 16, 4, 5)  # 3 studies x 2 views
    tokens, glob = VisualTokenNeck(in_channels=16)((fmap, ), num_views=2)
    views = fmap.view(3, 2, 16, 4, 5)
    want = torch.cat(
        [views[:, v].reshape(3, 16, -1).permute(0, 2, 1) for v in range(2)], 1)
    assert torch.equal(tokens, want)
    torch.testing.assert_close(glob, views.mean((1, 3, 4)))


def test_vit_cls_drop_keep_and_featmap_agree():
    x = torch.rand(2, 3, 32, 32)
    raw = tiny_vit('raw')(x)[-1]  # 2, 1 + 16, 24
    fmap = tiny_vit('featmap')(x)  # 2, 24, 4, 4 (same weights, seed 0)
    drop, cls_global = VisualTokenNeck(24, cls='drop')((raw, ))
    keep, _ = VisualTokenNeck(24, cls='keep')((raw, ))
    from_map, _ = VisualTokenNeck(24)(fmap)
    assert torch.equal(drop, raw[:, 1:]) and torch.equal(keep, raw)
    assert torch.equal(cls_global, raw[:, 0])
    torch.testing.assert_close(from_map, drop)


def test_global_and_both_tokens_and_projection():
    raw = torch.randn(4, 1 + 9, 8)
    glob, _ = VisualTokenNeck(8, tokens='global')(raw, num_views=2)
    assert torch.equal(glob, raw[:, 0].reshape(2, 2, 8))
    both, _ = VisualTokenNeck(8, tokens='both')(raw)
    assert torch.equal(both[:, -1], raw[:, 0])
    assert torch.equal(both[:, :-1], raw[:, 1:])
    neck = VisualTokenNeck(8, out_channels=5)
    proj, g = neck(raw)
    torch.testing.assert_close(proj, neck.proj(raw[:, 1:]))
    assert neck.out_channels == 5 and g.shape == (4, 5)
    vec, _ = VisualTokenNeck(8)(torch.randn(6, 8), num_views=2)
    assert vec.shape == (3, 2, 8)


def test_bad_inputs_name_cause_and_fix():
    # ViT-B/16 gives 768-d tokens; R2Gen's ResNet-101 neck expects 2048
    with pytest.raises(
            ValueError, match='768-d .* in_channels=2048.*'
            'in_channels=768'):
        VisualTokenNeck(2048)((torch.randn(2, 197, 768), ))
    with pytest.raises(ValueError, match='no CLS token'):
        VisualTokenNeck(16, cls='keep')(torch.randn(2, 16, 3, 3))
    with pytest.raises(ValueError, match='not a multiple of num_views=2'):
        VisualTokenNeck(16)(torch.randn(3, 16, 2, 2), num_views=2)
    with pytest.raises(ValueError, match="'drop' or 'keep'"):
        VisualTokenNeck(16, cls='first')


def test_resnet_stage4_gives_49_tokens_per_view():
    backbone = ResNet(depth=18, out_indices=(3, ))
    backbone.eval()
    with torch.no_grad():
        out = backbone(torch.rand(4, 3, 224, 224))
    tokens, _ = VisualTokenNeck(512)(out, num_views=2)
    assert tokens.shape == (2, 98, 512)  # R2Gen's 98 tokens for IU X-ray
