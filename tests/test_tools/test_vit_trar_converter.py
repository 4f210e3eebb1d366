# Copyright (c) mmext contributors. All rights reserved.
"""ViT-TRAR checkpoint -> mmext: keys, strict checks and logit parity.

The checkpoint is built with hsb1357173526/ViT-TRAR's key names and shapes
(``transformer.embeddings.*``, ``transformer.encoder.layer.{i}.attn.
{query,key,value,out,routing_block.mlp.{0,2}}``, ``ffn.fc1/fc2``,
``attention_norm``, ``ffn_norm``, ``encoder_norm``, ``head``) and saved as
its ``train.py`` does (``state_dict``, ``optimizer``, ``scheduler``, ``steps``,
``best_acc``). The reference forward below is written from the reference's
equations in plain torch on those raw tensors (masks by its loops, scores
filled with -1e9, all maps stacked and mixed by einsum); it shares no code
with mmext.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from mmext.models.utils.checkpoint_convert import (CheckpointConversionError,
                                                   convert_vit_trar_checkpoint)
from mmext.registry import MODELS
from mmext.utils import register_all_modules
from ..conftest import ROOT, run_tool

D, HEADS, FFN, DEPTH, PATCH, CLASSES = 32, 4, 48, 2, 8, 5
TOOL = ROOT / 'tools/model_converters/vit_trar_to_mmext.py'


def make_vit_trar_state_dict(num_orders, img_size=32, seed=0):
    """Random weights under ViT-TRAR's ``VisionTransformer`` keys."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    grid = img_size // PATCH
    e, sd = 'transformer.embeddings.', {}
    sd[e + 'position_embeddings'] = rand(1, grid * grid + 1, D)
    sd[e + 'cls_token'] = rand(1, 1, D)
    sd[e + 'patch_embeddings.weight'] = rand(D, 3, PATCH, PATCH, scale=0.05)
    sd[e + 'patch_embeddings.bias'] = rand(D)
    for i in range(DEPTH):
        p = f'transformer.encoder.layer.{i}.'
        for norm in ('attention_norm', 'ffn_norm'):
            sd[f'{p}{norm}.weight'] = 1 + rand(D, scale=0.1)
            sd[f'{p}{norm}.bias'] = rand(D, scale=0.1)
        sd[p + 'ffn.fc1.weight'], sd[p + 'ffn.fc1.bias'] = rand(FFN, D), \
            rand(FFN)
        sd[p + 'ffn.fc2.weight'], sd[p + 'ffn.fc2.bias'] = rand(D, FFN), \
            rand(D)
        for name in ('query', 'key', 'value', 'out'):
            sd[f'{p}attn.{name}.weight'] = rand(D, D, scale=0.4)
            sd[f'{p}attn.{name}.bias'] = rand(D)
        r = p + 'attn.routing_block.mlp.'
        sd[r + '0.weight'] = rand(D // 2, D, scale=1.0)  # bias=False
        sd[r + '2.weight'] = rand(num_orders, D // 2, scale=1.0)
        sd[r + '2.bias'] = rand(num_orders)
    sd['transformer.encoder.encoder_norm.weight'] = 1 + rand(D, scale=0.1)
    sd['transformer.encoder.encoder_norm.bias'] = rand(D, scale=0.1)
    sd['head.weight'], sd['head.bias'] = rand(CLASSES, D), rand(CLASSES)
    return sd


def save_train_py_checkpoint(sd, path):
    """As ViT-TRAR's ``save_checkpoint``: model, SGD, scheduler, counters."""
    params = [torch.nn.Parameter(v.clone()) for v in list(sd.values())[:3]]
    optim = torch.optim.SGD(params, lr=3e-2, momentum=0.9)
    sum(p.sum() for p in params).backward()
    optim.step()
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda step: 1.0)
    torch.save(
        dict(
            state_dict=sd,
            optimizer=optim.state_dict(),
            scheduler=sched.state_dict(),
            steps=10,
            best_acc=0.5), path)


def reference_masks(grid, order):
    """getImgMasks: True = masked, (grid², grid²)."""
    n = grid * grid
    masks = torch.ones(n, n, dtype=torch.bool)
    for i in range(grid):
        for j in range(grid):
            for x in range(i - order, i + order + 1):
                for y in range(j - order, j + order + 1):
                    if 0 <= x < grid and 0 <= y < grid:
                        masks[i * grid + j, x * grid + y] = False
    return masks


def reference_logits(sd, img, orders):
    """ViT-TRAR's forward on the raw reference tensors (eval mode)."""
    e = 'transformer.embeddings.'
    x = F.conv2d(
        img,
        sd[e + 'patch_embeddings.weight'],
        sd[e + 'patch_embeddings.bias'],
        stride=PATCH)
    grid = x.shape[-1]
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd[e + 'cls_token'].expand(len(img), -1, -1), x], 1)
    x = x + sd[e + 'position_embeddings']
    B, T, _ = x.shape
    masks = [None if k == 0 else reference_masks(grid, k) for k in orders]

    def lin(t, name):
        return F.linear(t, sd[name + '.weight'], sd.get(name + '.bias'))

    def ln(t, name):
        return F.layer_norm(t, (D, ), sd[name + '.weight'], sd[name + '.bias'],
                            1e-6)

    def heads(t):
        return t.view(B, T, HEADS, D // HEADS).permute(0, 2, 1, 3)

    for i in range(DEPTH):
        p = f'transformer.encoder.layer.{i}.'
        h, x = x, ln(x, p + 'attention_norm')
        r = p + 'attn.routing_block.mlp.'
        alpha = lin(F.relu(lin(x.mean(1), r + '0')), r + '2').softmax(-1)
        q, k, v = (
            heads(lin(x, f'{p}attn.{n}')) for n in ('query', 'key', 'value'))
        scores = q @ k.transpose(-2, -1) / math.sqrt(D // HEADS)
        maps = []
        for mask in masks:
            s = scores.clone()
            if mask is not None:
                s[:, :, 1:, 1:] = s[:, :, 1:, 1:].masked_fill(mask, -1e9)
            maps.append(s.softmax(-1))
        att = torch.einsum('bl,blcnm->bcnm', alpha, torch.stack(maps, 1))
        out = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = lin(out, p + 'attn.out') + h
        h, x = x, ln(x, p + 'ffn_norm')
        x = lin(F.gelu(lin(x, p + 'ffn.fc1')), p + 'ffn.fc2') + h
    x = ln(x, 'transformer.encoder.encoder_norm')
    return lin(x[:, 0], 'head')


def _build(model_cfg, state_dict):
    register_all_modules()
    model = MODELS.build(model_cfg).eval()
    model.load_state_dict(state_dict, strict=True)
    return model


@pytest.mark.parametrize('orders', [[0, 1, 2], [0, 2]])
def test_converted_logits_equal_the_reference(tmp_path, orders):
    sd = make_vit_trar_state_dict(len(orders))
    src = tmp_path / 'ViT_TRAR_32.ckpt'
    save_train_py_checkpoint(sd, src)
    converted, model_cfg = convert_vit_trar_checkpoint(
        str(src), str(tmp_path / 'out.pth'), orders=orders, num_heads=HEADS)
    backbone = model_cfg['backbone']
    assert backbone['img_size'] == 32 and backbone['orders'] == orders
    assert backbone['routing_reduction'] == 2
    assert model_cfg['head']['num_classes'] == CLASSES
    q = sd['transformer.encoder.layer.1.attn.query.weight']
    assert torch.equal(converted['backbone.layers.1.attn.qkv.weight'][:D], q)
    model = _build(model_cfg, converted)
    img = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        logits = model(img, mode='tensor')
    torch.testing.assert_close(
        logits, reference_logits(sd, img, orders), atol=1e-5, rtol=1e-5)
    # the default orders are 0 .. L-1
    _, default_cfg = convert_vit_trar_checkpoint(str(src), num_heads=HEADS)
    assert default_cfg['backbone']['orders'] == list(range(len(orders)))


def test_single_order_router_is_dropped_and_equals_vit(tmp_path):
    sd = make_vit_trar_state_dict(1)
    torch.save(sd, tmp_path / 'vit_checkpoint.bin')  # save_model's format
    converted, model_cfg = convert_vit_trar_checkpoint(
        str(tmp_path / 'vit_checkpoint.bin'), num_heads=HEADS)
    assert not any('router' in k for k in converted)
    model = _build(model_cfg, converted)
    img = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        logits = model(img, mode='tensor')
    torch.testing.assert_close(
        logits, reference_logits(sd, img, [0]), atol=1e-5, rtol=1e-5)


def test_cli_writes_a_checkpoint_the_config_loads(tmp_path):
    """The CLI with a config of the checkpoint's shapes; a config of other
    shapes gets every mismatch reported and nothing written."""
    sd = make_vit_trar_state_dict(3)
    save_train_py_checkpoint(sd, tmp_path / 'ViT_TRAR.ckpt')
    cfg = tmp_path / 'tiny_trar.py'
    cfg.write_text(
        'model = dict(type="ImageClassifier", backbone=dict(type="TRARViT", '
        f'arch=dict(embed_dims={D}, num_layers={DEPTH}, num_heads={HEADS}, '
        f'feedforward_channels={FFN}), img_size=32, patch_size={PATCH}, '
        'orders=[0, 1, 2], init_cfg=dict(type="Pretrained", '
        'checkpoint="missing.pth")), neck=None, head=dict('
        f'type="VisionTransformerClsHead", num_classes={CLASSES}, '
        f'in_channels={D}))\n')
    out = tmp_path / 'converted.pth'
    proc = run_tool([
        TOOL, tmp_path / 'ViT_TRAR.ckpt', out, '--config', cfg, '--orders', 0,
        1, 2
    ],
                    cwd=tmp_path)
    assert 'loads strictly' in proc.stdout and out.is_file()
    from mmext.utils import safe_torch_load
    saved = safe_torch_load(out)
    assert 'backbone.layers.0.attn.router.mlp.2.bias' in saved['state_dict']
    assert saved['meta']['model']['backbone']['orders'] == [0, 1, 2]

    cfg.write_text(cfg.read_text().replace('num_classes=5',
                                           'num_classes=7').replace(
                                               'orders=[0, 1, 2]',
                                               'orders=[0, 1]'))
    bad = tmp_path / 'bad.pth'
    with pytest.raises(CheckpointConversionError) as err:
        convert_vit_trar_checkpoint(
            str(tmp_path / 'ViT_TRAR.ckpt'), str(bad), config=str(cfg))
    assert not bad.exists()
    msg = str(err.value)
    assert '0 missing, 0 unexpected and 6 mismatched keys' in msg
    assert 'head.layers.head.weight: checkpoint (5, 32) vs model (7, 32)' \
        in msg
    assert 'backbone.layers.0.attn.router.mlp.2.weight' in msg


def test_errors_name_the_cause(tmp_path):
    sd = make_vit_trar_state_dict(3)
    src = tmp_path / 'a.bin'
    torch.save(sd, src)
    with pytest.raises(
            CheckpointConversionError,
            match=r'--orders \[0, 1\] '
            r'has 2 entries but the routers have 3 outputs'):
        convert_vit_trar_checkpoint(str(src), orders=[0, 1])
    with pytest.raises(
            CheckpointConversionError,
            match=r'--img-size 64 .* 4x4 grid of 8-px'):
        convert_vit_trar_checkpoint(str(src), img_size=64)
    del sd['transformer.encoder.layer.1.attn.key.bias']
    torch.save(sd, src)
    with pytest.raises(
            CheckpointConversionError,
            match=r"layer 1 has attn\.\['query', 'value'\] bias"):
        convert_vit_trar_checkpoint(str(src), num_heads=HEADS)
    sd = make_vit_trar_state_dict(3)
    sd['transformer.embeddings.hybrid_model.root.conv.weight'] = \
        torch.zeros(1)
    torch.save(sd, src)
    with pytest.raises(
            KeyError,
            match=r'1 keys match no conversion rule '
            r'\(transformer\.embeddings\.hybrid_model'):
        convert_vit_trar_checkpoint(str(src), num_heads=HEADS)
    sd = make_vit_trar_state_dict(3)
    del sd['transformer.encoder.layer.0.ffn_norm.bias']
    torch.save(sd, src)
    with pytest.raises(
            CheckpointConversionError,
            match=r'1 missing, 0 unexpected and 0 mismatched .*'
            r'missing: backbone\.layers\.0\.ln2\.bias'):
        convert_vit_trar_checkpoint(str(src), num_heads=HEADS)
