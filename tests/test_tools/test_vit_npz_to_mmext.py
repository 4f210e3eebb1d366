# Copyright (c) mmext contributors. All rights reserved.
"""Google ViT .npz -> mmext: parity with a plain-torch ViT read straight from
the npz layout, pos-embed resizing, head keep/drop and errors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope

from mmext.models.utils.checkpoint_convert import (convert_vit_npz,
                                                   convert_vit_npz_file)
from mmext.registry import MODELS
from mmext.testing import make_google_vit_npz
from mmext.utils import safe_torch_load
from ..conftest import ROOT, run_tool

TOOL = ROOT / 'tools/model_converters/vit_npz_to_mmext.py'
D, HEADS, MLP, LAYERS, PATCH, GRID, CLASSES = 32, 4, 48, 2, 8, 4, 5


def make_npz(path, pre_logits=False, drop=()):
    return make_google_vit_npz(path, D, HEADS, MLP, LAYERS, PATCH, GRID,
                               CLASSES, pre_logits, drop)


def reference_vit(w, img):
    """Plain-torch ViT computed directly on the npz arrays (einsum on the
    (in, heads, head_dim) kernels, no fused qkv, exact GELU)."""
    x = F.conv2d(
        img,
        w['embedding/kernel'].permute(3, 2, 0, 1),
        w['embedding/bias'],
        stride=PATCH)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([w['cls'].expand(len(img), -1, -1), x], 1)
    x = x + w['Transformer/posembed_input/pos_embedding']

    def ln(t, name):
        return F.layer_norm(t, (D, ), w[name + '/scale'], w[name + '/bias'],
                            1e-6)

    for i in range(LAYERS):
        b = f'Transformer/encoderblock_{i}/'
        a = b + 'MultiHeadDotProductAttention_1/'
        h = ln(x, b + 'LayerNorm_0')
        q, k, v = (
            torch.einsum('bnc,chd->bhnd', h, w[a + n + '/kernel']) +
            w[a + n + '/bias'][None, :, None]
            for n in ('query', 'key', 'value'))
        att = (q @ k.transpose(-1, -2) / (D // HEADS)**0.5).softmax(-1)
        o = torch.einsum('bhnd,hdc->bnc', att @ v, w[a + 'out/kernel'])
        x = x + o + w[a + 'out/bias']
        h = ln(x, b + 'LayerNorm_2')
        m = b + 'MlpBlock_3/'
        h = F.gelu(h @ w[m + 'Dense_0/kernel'] + w[m + 'Dense_0/bias'])
        x = x + h @ w[m + 'Dense_1/kernel'] + w[m + 'Dense_1/bias']
    cls = ln(x, 'Transformer/encoder_norm')[:, 0]
    if 'pre_logits/kernel' in w:
        cls = torch.tanh(cls @ w['pre_logits/kernel'] + w['pre_logits/bias'])
    return cls @ w['head/kernel'] + w['head/bias']


def build_classifier(backbone_type='VisionTransformer',
                     hidden_dim=None,
                     img_size=GRID * PATCH,
                     **backbone):
    init_default_scope('mmext')
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type=backbone_type,
                arch=dict(
                    embed_dims=D,
                    num_layers=LAYERS,
                    num_heads=HEADS,
                    feedforward_channels=MLP),
                img_size=img_size,
                patch_size=PATCH,
                **backbone),
            head=dict(
                type='VisionTransformerClsHead',
                num_classes=CLASSES,
                in_channels=D,
                hidden_dim=hidden_dim))).eval()


@pytest.mark.parametrize('pre_logits', [False, True])
@pytest.mark.parametrize('backbone', ['VisionTransformer', 'TRARViT'])
def test_converted_logits_match_reference(tmp_path, pre_logits, backbone):
    w = make_npz(tmp_path / 'ViT-T_8.npz', pre_logits)
    out = tmp_path / 'vit.pth'
    convert_vit_npz_file(str(tmp_path / 'ViT-T_8.npz'), str(out), 'keep')
    ckpt = safe_torch_load(str(out))
    extra = dict(orders=[0]) if backbone == 'TRARViT' else {}
    model = build_classifier(backbone, D if pre_logits else None, **extra)
    model.load_state_dict(ckpt['state_dict'], strict=True)
    img = torch.rand(2, 3, GRID * PATCH, GRID * PATCH)
    with torch.no_grad():
        logits = model(img, mode='tensor')
    torch.testing.assert_close(
        logits, reference_vit(w, img), atol=1e-4, rtol=1e-4)
    assert ckpt['meta']['embed_dims'] == D
    assert ckpt['meta']['num_layers'] == LAYERS


def test_head_dropped_and_routers_left_to_init(tmp_path):
    make_npz(tmp_path / 'a.npz', pre_logits=True)
    sd, _ = convert_vit_npz(np.load(tmp_path / 'a.npz'), head='drop')
    assert not any(k.startswith('head.') for k in sd)
    model = build_classifier('TRARViT', orders=[0, 1])
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected
    assert {k.split('.')[0] for k in missing} == {'head', 'backbone'}
    assert all('router' in k for k in missing if k.startswith('backbone.'))


def test_pos_embed_resize_bilinear_as_reference_and_bicubic(tmp_path):
    from scipy import ndimage
    w = make_npz(tmp_path / 'a.npz')
    weights = np.load(tmp_path / 'a.npz')
    sd, meta = convert_vit_npz(weights, img_size=6 * PATCH)
    pos = sd['backbone.pos_embed']
    assert pos.shape == (1, 37, D) and meta['img_size'] == 48
    src = w['Transformer/posembed_input/pos_embedding']
    grid = src[0, 1:].reshape(GRID, GRID, D).numpy()
    expected = ndimage.zoom(grid, (1.5, 1.5, 1), order=1).reshape(36, D)
    torch.testing.assert_close(pos[0, 1:], torch.from_numpy(expected))
    assert torch.equal(pos[0, 0], src[0, 0])  # CLS untouched
    sd_cubic, _ = convert_vit_npz(
        weights, img_size=6 * PATCH, interp='bicubic')
    cubic = F.interpolate(
        src[:, 1:].reshape(1, GRID, GRID, D).permute(0, 3, 1, 2),
        size=(6, 6),
        mode='bicubic',
        align_corners=False)
    torch.testing.assert_close(sd_cubic['backbone.pos_embed'][0, 1:],
                               cubic.flatten(2)[0].t())
    # the resized checkpoint runs at 48 px
    model = build_classifier(img_size=48)
    model.load_state_dict(sd, strict=False)
    assert model(torch.rand(1, 3, 48, 48), mode='tensor').shape == (1, 5)


def test_missing_key_is_a_one_line_error(tmp_path):
    key = 'Transformer/encoderblock_1/MlpBlock_3/Dense_0/kernel'
    make_npz(tmp_path / 'bad.npz', drop=[key])
    res = run_tool([TOOL, tmp_path / 'bad.npz', tmp_path / 'x.pth'],
                   cwd=tmp_path,
                   check=False)
    assert res.returncode != 0 and 'Traceback' not in res.stderr
    last = res.stderr.strip().splitlines()[-1]  # after mmcv's warning
    assert key in last and 'bad.npz' in last
    assert not (tmp_path / 'x.pth').exists()


def test_default_output_goes_to_pretrain_pth(tmp_path, monkeypatch):
    make_npz(tmp_path / 'ViT-T_8.npz')
    monkeypatch.chdir(tmp_path)
    dst, sd, meta = convert_vit_npz_file('ViT-T_8.npz', img_size=48)
    assert dst == 'pretrain_pth/ViT-T_8_48.pth'
    saved = safe_torch_load(str(tmp_path / dst))
    assert saved['meta'] == meta and meta['img_size'] == 48
    assert saved['state_dict'].keys() == sd.keys() and len(sd) == 30
