# Copyright (c) mmext contributors. All rights reserved.
"""torchvision / timm -> mmpretrain converters, on generated state dicts with
the real key names and shapes (no downloads)."""
import pytest
import torch
import torch.nn.functional as F
import torchvision

from mmext.models.utils.checkpoint_convert import (convert_checkpoint_file,
                                                   convert_timm_seresnet,
                                                   convert_timm_tinyvit,
                                                   convert_timm_vit)
from mmext.registry import MODELS
from mmext.utils import register_all_modules, safe_torch_load
from ..conftest import ROOT, run_tool

register_all_modules()
SCRIPT = ROOT / 'tools/model_converters/convert_to_mmpretrain.py'


def _randomize_norms(module):
    """Non-trivial BN statistics and affine params, so a swapped key shows."""
    gen = torch.Generator().manual_seed(0)
    for name, t in list(module.named_parameters()) + list(
            module.named_buffers()):
        if name.endswith('running_mean') or (t.dim() == 1 and 'bias' in name):
            t.data.copy_(torch.randn(t.shape, generator=gen) * 0.1)
        elif name.endswith('running_var') or (t.dim() == 1
                                              and 'weight' in name):
            t.data.copy_(torch.rand(t.shape, generator=gen) + 0.5)


def _classifier(backbone, head):
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=backbone,
            neck=dict(type='GlobalAveragePooling')
            if head['type'] == 'LinearClsHead' else None,
            head=head))
    return model.eval()


def test_torchvision_resnet18_parity_through_file(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None, num_classes=10)
    _randomize_norms(tv)
    tv.eval()
    src = tmp_path / 'resnet18-f37072fd.pth'
    torch.save(tv.state_dict(), src)
    dst = tmp_path / 'out/resnet18_tv.pth'
    convert_checkpoint_file('torchvision-resnet', str(src), str(dst))
    state = safe_torch_load(str(dst))['state_dict']
    model = _classifier(
        dict(type='ResNet', depth=18),
        dict(type='LinearClsHead', num_classes=10, in_channels=512))
    model.load_state_dict(state, strict=True)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(
            model(x, mode='tensor'), tv(x), rtol=1e-5, atol=1e-5)


def test_cli_no_head_and_errors(tmp_path):
    tv = torchvision.models.resnet18(weights=None)
    src = tmp_path / 'r18.pth'
    torch.save({'state_dict': tv.state_dict()}, src)  # wrapped is fine too
    dst = tmp_path / 'r18_nohead.pth'
    proc = run_tool([SCRIPT, 'torchvision-resnet', src, dst, '--no-head'],
                    cwd=tmp_path)
    assert 'r18.pth (122 keys, torchvision-resnet)' in proc.stdout
    keys = safe_torch_load(str(dst))['state_dict'].keys()
    assert keys and all(k.startswith('backbone.') for k in keys)
    # a ViT checkpoint given as ResNet: one line naming the problem
    vit = tmp_path / 'vit.pth'
    torch.save(_timm_vit_state(), vit)
    proc = run_tool([SCRIPT, 'torchvision-resnet', vit, tmp_path / 'v.pth'],
                    cwd=tmp_path,
                    check=False)
    assert proc.returncode == 1 and not (tmp_path / 'v.pth').exists()
    last = proc.stderr.strip().splitlines()[-1]  # after mmcv's warning
    assert 'Traceback' not in proc.stderr
    assert last.startswith('convert_to_mmpretrain: torchvision ResNet: ')
    assert 'match no conversion rule (cls_token, pos_embed' in last
    with pytest.raises(FileNotFoundError, match='missing.pth does not exist'):
        convert_checkpoint_file('timm-vit', str(tmp_path / 'missing.pth'),
                                str(dst))


# ---------------------------------------------------------------- timm ViT
DIM, DEPTH, HEADS, GRID, PATCH = 32, 2, 2, 4, 8


def _timm_vit_state(num_classes=5):
    """timm ``VisionTransformer`` keys and shapes (tiny dims)."""
    gen = torch.Generator().manual_seed(1)

    def r(*shape):
        return torch.randn(shape, generator=gen) * 0.2

    sd = {
        'cls_token': r(1, 1, DIM),
        'pos_embed': r(1, GRID * GRID + 1, DIM),
        'patch_embed.proj.weight': r(DIM, 3, PATCH, PATCH),
        'patch_embed.proj.bias': r(DIM),
    }
    for i in range(DEPTH):
        b = f'blocks.{i}.'
        sd.update({
            b + 'norm1.weight': 1 + r(DIM),
            b + 'norm1.bias': r(DIM),
            b + 'attn.qkv.weight': r(3 * DIM, DIM),
            b + 'attn.qkv.bias': r(3 * DIM),
            b + 'attn.proj.weight': r(DIM, DIM),
            b + 'attn.proj.bias': r(DIM),
            b + 'norm2.weight': 1 + r(DIM),
            b + 'norm2.bias': r(DIM),
            b + 'mlp.fc1.weight': r(4 * DIM, DIM),
            b + 'mlp.fc1.bias': r(4 * DIM),
            b + 'mlp.fc2.weight': r(DIM, 4 * DIM),
            b + 'mlp.fc2.bias': r(DIM),
        })
    sd.update({
        'norm.weight': 1 + r(DIM),
        'norm.bias': r(DIM),
        'head.weight': r(num_classes, DIM),
        'head.bias': r(num_classes)
    })
    return sd


def _reference_vit(sd, x):
    """timm ViT forward written from its state-dict layout."""
    B = x.shape[0]
    t = F.conv2d(
        x,
        sd['patch_embed.proj.weight'],
        sd['patch_embed.proj.bias'],
        stride=PATCH).flatten(2).transpose(1, 2)  # b n d
    t = torch.cat([sd['cls_token'].expand(B, -1, -1), t], 1) + sd['pos_embed']
    for i in range(DEPTH):
        p = lambda n: sd[f'blocks.{i}.{n}']  # noqa: E731
        h = F.layer_norm(t, (DIM, ), p('norm1.weight'), p('norm1.bias'), 1e-6)
        q, k, v = F.linear(h, p('attn.qkv.weight'), p('attn.qkv.bias')) \
            .reshape(B, -1, 3, HEADS, DIM // HEADS).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-2, -1) * (DIM // HEADS)**-0.5).softmax(-1)
        h = (a @ v).transpose(1, 2).reshape(B, -1, DIM)
        t = t + F.linear(h, p('attn.proj.weight'), p('attn.proj.bias'))
        h = F.layer_norm(t, (DIM, ), p('norm2.weight'), p('norm2.bias'), 1e-6)
        h = F.gelu(F.linear(h, p('mlp.fc1.weight'), p('mlp.fc1.bias')))
        t = t + F.linear(h, p('mlp.fc2.weight'), p('mlp.fc2.bias'))
    t = F.layer_norm(t, (DIM, ), sd['norm.weight'], sd['norm.bias'], 1e-6)
    return F.linear(t[:, 0], sd['head.weight'], sd['head.bias'])


def test_timm_vit_parity():
    sd = _timm_vit_state()
    model = _classifier(
        dict(
            type='VisionTransformer',
            img_size=GRID * PATCH,
            patch_size=PATCH,
            arch=dict(
                embed_dims=DIM,
                num_layers=DEPTH,
                num_heads=HEADS,
                feedforward_channels=4 * DIM)),
        dict(type='VisionTransformerClsHead', num_classes=5, in_channels=DIM))
    model.load_state_dict(convert_timm_vit(sd), strict=True)
    x = torch.rand(2, 3, GRID * PATCH, GRID * PATCH)
    with torch.no_grad():
        torch.testing.assert_close(
            model(x, mode='tensor'),
            _reference_vit(sd, x),
            rtol=1e-4,
            atol=1e-5)


# ------------------------------------------------------ timm SE-ResNet-50
def _timm_legacy_seresnet50_state():
    """timm ``legacy_seresnet50`` keys and shapes (ImageNet head)."""
    sd = {'layer0.conv1.weight': torch.randn(64, 3, 7, 7)}

    def bn(c):
        return {
            'weight': torch.rand(c) + .5,
            'bias': torch.randn(c),
            'running_mean': torch.randn(c) * .1,
            'running_var': torch.rand(c) + .5,
            'num_batches_tracked': torch.tensor(1)
        }

    sd.update({f'layer0.bn1.{k}': v for k, v in bn(64).items()})
    cin = 64
    for s, (blocks,
            width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), 1):
        cout = width * 4
        for j in range(blocks):
            p = f'layer{s}.{j}.'
            convs = [('conv1', width, cin if j == 0 else cout, 1),
                     ('conv2', width, width, 3), ('conv3', cout, width, 1)]
            for n, (name, o, i, k) in enumerate(convs, 1):
                sd[p + f'{name}.weight'] = torch.randn(o, i, k, k) * .05
                sd.update({p + f'bn{n}.{k2}': v for k2, v in bn(o).items()})
            sd[p + 'se_module.fc1.weight'] = torch.randn(
                cout // 16, cout, 1, 1)
            sd[p + 'se_module.fc1.bias'] = torch.randn(cout // 16)
            sd[p + 'se_module.fc2.weight'] = torch.randn(
                cout, cout // 16, 1, 1)
            sd[p + 'se_module.fc2.bias'] = torch.randn(cout)
            if j == 0:
                sd[p + 'downsample.0.weight'] = torch.randn(cout, cin, 1, 1)
                sd.update({
                    p + f'downsample.1.{k2}': v
                    for k2, v in bn(cout).items()
                })
        cin = cout
    sd['last_linear.weight'] = torch.randn(1000, 2048)
    sd['last_linear.bias'] = torch.randn(1000)
    return sd


def test_timm_seresnet_loads_strictly_in_place():
    sd = _timm_legacy_seresnet50_state()
    converted = convert_timm_seresnet(sd)
    model = _classifier(
        dict(type='SEResNet', depth=50, style='caffe'),
        dict(type='LinearClsHead', num_classes=1000, in_channels=2048))
    model.load_state_dict(converted, strict=True)
    bb = model.backbone
    assert torch.equal(bb.conv1.weight, sd['layer0.conv1.weight'])
    assert torch.equal(bb.bn1.running_var, sd['layer0.bn1.running_var'])
    assert torch.equal(bb.layer3[2].se_layer.conv2.conv.bias,
                       sd['layer3.2.se_module.fc2.bias'])
    assert torch.equal(bb.layer2[0].downsample[1].weight,
                       sd['layer2.0.downsample.1.weight'])
    assert torch.equal(model.head.fc.weight, sd['last_linear.weight'])


# --------------------------------------------------------- timm TinyViT-5M
def _timm_tinyvit_5m_state():
    """timm ``tiny_vit_5m_224`` keys and shapes, written from timm's module
    layout: ``conv``/``bn`` pairs, patch merging at the start of stages
    1..3, ``head.norm`` + ``head.fc``."""
    channels, heads, depths = [64, 128, 160, 320], [2, 4, 5, 10], [2, 2, 6, 2]
    windows = [7, 7, 14, 7]
    res = [56, 28, 14, 7]
    sd = {}

    def conv_bn(prefix, cout, cin, k, groups=1):
        sd[prefix + 'conv.weight'] = torch.randn(cout, cin // groups, k, k)
        sd[prefix + 'bn.weight'] = torch.rand(cout) + .5
        sd[prefix + 'bn.bias'] = torch.randn(cout)
        sd[prefix + 'bn.running_mean'] = torch.randn(cout)
        sd[prefix + 'bn.running_var'] = torch.rand(cout) + .5
        sd[prefix + 'bn.num_batches_tracked'] = torch.tensor(1)

    conv_bn('patch_embed.conv1.', 32, 3, 3)
    conv_bn('patch_embed.conv2.', 64, 32, 3)
    for s, c in enumerate(channels):
        if s > 0:
            p = f'stages.{s}.downsample.'
            conv_bn(p + 'conv1.', c, channels[s - 1], 1)
            conv_bn(p + 'conv2.', c, c, 3, groups=c)
            conv_bn(p + 'conv3.', c, c, 1)
        for j in range(depths[s]):
            p = f'stages.{s}.blocks.{j}.'
            if s == 0:
                conv_bn(p + 'conv1.', 4 * c, c, 1)
                conv_bn(p + 'conv2.', 4 * c, 4 * c, 3, groups=4 * c)
                conv_bn(p + 'conv3.', c, 4 * c, 1)
                continue
            w = min(windows[s], res[s])
            sd[p + 'attn.attention_biases'] = torch.randn(heads[s], w * w)
            for n, shape in (('attn.norm', [c]), ('mlp.norm', [c])):
                sd[f'{p}{n}.weight'] = torch.rand(shape) + .5
                sd[f'{p}{n}.bias'] = torch.randn(shape)
            for n, o, i in (('attn.qkv', 3 * c, c), ('attn.proj', c, c),
                            ('mlp.fc1', 4 * c, c), ('mlp.fc2', c, 4 * c)):
                sd[f'{p}{n}.weight'] = torch.randn(o, i) * .05
                sd[f'{p}{n}.bias'] = torch.randn(o)
            conv_bn(p + 'local_conv.', c, c, 3, groups=c)
    sd['head.norm.weight'] = torch.rand(320) + .5
    sd['head.norm.bias'] = torch.randn(320)
    sd['head.fc.weight'] = torch.randn(1000, 320)
    sd['head.fc.bias'] = torch.randn(1000)
    return sd


def test_timm_tinyvit_loads_strictly_in_place():
    sd = _timm_tinyvit_5m_state()
    converted = convert_timm_tinyvit(sd, keep_head=False)
    assert not any(k.startswith('head.') for k in converted)
    model = _classifier(
        dict(type='TinyViT', arch='5m', out_indices=(3, )),
        dict(type='LinearClsHead', num_classes=1000, in_channels=320))
    missing, unexpected = model.load_state_dict(converted, strict=False)
    assert missing == ['head.fc.weight', 'head.fc.bias'] and not unexpected
    bb = model.backbone
    # timm's stage-2 patch merging is mmpretrain's stage-1 downsample
    assert torch.equal(bb.stages[1].downsample.conv2.conv2d.weight,
                       sd['stages.2.downsample.conv2.conv.weight'])
    assert torch.equal(bb.patch_embed.seq[2].bn2d.running_mean,
                       sd['patch_embed.conv2.bn.running_mean'])
    assert torch.equal(bb.norm3.weight, sd['head.norm.weight'])
    assert torch.equal(bb.stages[3].blocks[1].attn.attention_biases,
                       sd['stages.3.blocks.1.attn.attention_biases'])


def test_unknown_key_is_an_error():
    sd = _timm_vit_state()
    sd['blocks.0.attn.q_norm.weight'] = torch.ones(16)
    with pytest.raises(
            KeyError,
            match='1 keys match no conversion rule '
            r'\(blocks.0.attn.q_norm.weight\)'):
        convert_timm_vit(sd)
