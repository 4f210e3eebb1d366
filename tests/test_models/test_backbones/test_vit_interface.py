# Copyright (c) mmext contributors. All rights reserved.
"""The one ViT token / layer interface equals mmpretrain's own forward."""
import pytest
import torch
from mmpretrain.models.backbones import VisionTransformer

from mmext.models.backbones import TRARViT
from mmext.models.backbones.vit_interface import (embed_tokens, is_vit,
                                                  iter_layers, layer_context)
from mmext.models.multimodal.vilbert import PatchVisualStream

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def _first_layer_input(vit, img):
    """What mmpretrain's forward feeds its first block (a pre-hook)."""
    seen = []
    handle = vit.layers[0].register_forward_pre_hook(
        lambda m, args: seen.append(args[0].detach().clone()))
    with torch.no_grad():
        vit(img)
    handle.remove()
    return seen[0]


@pytest.fixture
def vit():
    torch.manual_seed(0)
    model = VisionTransformer(
        ARCH,
        img_size=32,
        patch_size=8,
        out_type='raw',
        drop_rate=0.1,
        pre_norm=True)
    # non-zero CLS / pos-embed so a missing or misplaced one shows
    torch.nn.init.normal_(model.cls_token)
    torch.nn.init.normal_(model.pos_embed)
    model.eval()  # BaseBackbone.train returns None
    return model


# 32 x 32 is the built grid; 48 x 40 makes the pos-embed resize run
@pytest.mark.parametrize('size', [(32, 32), (48, 40)])
def test_embeddings_equal_mmpretrain_prologue(vit, size):
    img = torch.randn(2, 3, *size)
    expected = _first_layer_input(vit, img)
    hw = (size[0] // 8, size[1] // 8)

    with torch.no_grad():
        tokens, patch_resolution = embed_tokens(vit, img)
    assert patch_resolution == hw
    torch.testing.assert_close(tokens, expected, rtol=0, atol=0)

    trar = TRARViT(
        ARCH,
        img_size=32,
        patch_size=8,
        out_type='raw',
        drop_rate=0.1,
        pre_norm=True,
        orders=[0, 1])
    trar.eval()
    missing, unexpected = trar.load_state_dict(vit.state_dict(), False)
    assert not unexpected and all('router' in k for k in missing)
    # TRARViT's own forward feeds its first block the same tokens
    torch.testing.assert_close(
        _first_layer_input(trar, img), expected, rtol=0, atol=0)

    stream = PatchVisualStream(
        dict(
            type='VisionTransformer',
            arch=ARCH,
            img_size=32,
            patch_size=8,
            out_type='raw',
            pre_norm=True),
        embed_dims=32).eval()
    stream.backbone.load_state_dict(vit.state_dict())
    with torch.no_grad():
        x, mask, ctx = stream.embed(img)
    assert mask is None and ctx is None
    torch.testing.assert_close(x, expected, rtol=0, atol=0)


def test_layers_equal_mmpretrain_forward(vit):
    img = torch.randn(2, 3, 40, 32)
    with torch.no_grad():
        expected = vit(img)[0]
        x, hw = embed_tokens(vit, img)
        outs = list(iter_layers(vit, x, hw))
    assert [i for i, _ in outs] == [0, 1]
    torch.testing.assert_close(outs[-1][1], expected, rtol=0, atol=0)


def test_trar_context_and_stream_layers_match_backbone():
    torch.manual_seed(0)
    cfg = dict(
        type='TRARViT',
        arch=ARCH,
        img_size=32,
        patch_size=8,
        out_type='raw',
        orders=[0, 1])
    stream = PatchVisualStream(cfg, embed_dims=32, final_norm=True).eval()
    trar = stream.backbone
    assert is_vit(trar) and stream.split
    img = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        x, _, ctx = stream.embed(img)
        assert ctx is not None
        torch.testing.assert_close(
            ctx, layer_context(trar, (4, 4)), rtol=0, atol=0)
        for i in range(stream.num_layers):
            x = stream.layer(i, x, None, ctx)
        torch.testing.assert_close(x, trar(img)[0], rtol=0, atol=0)


def test_split_needs_a_vit():
    with pytest.raises(ValueError, match='VisionTransformer or a subclass'):
        PatchVisualStream(
            dict(type='ResNet', depth=18), embed_dims=512, split=True)
