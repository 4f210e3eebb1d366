# Copyright (c) mmext contributors. All rights reserved.
"""R2Gen checkpoint -> mmext: keys, vocabulary checks and forward parity.

The checkpoint is built with R2Gen's exact key names and shapes (its
``VisualExtractor`` is ``nn.Sequential(*list(resnet.children())[:-2])`` of a
torchvision ResNet; R2Gen accepts ``--visual_extractor resnet18 --d_vf 512``,
used here for speed, and any ``d_model == rm_d_model``). The reference
forward below is written from R2Gen's equations in plain torch against those
raw tensors; it shares no code with mmext.
"""
import json
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision

from mmext.models.utils.checkpoint_convert import (R2GenConversionError,
                                                   convert_r2gen_checkpoint,
                                                   convert_r2gen_state_dict,
                                                   load_r2gen_vocab)
from tests.conftest import ROOT, run_tool

TOOL = ROOT / 'tools/model_converters/r2gen_to_mmext.py'

D, DFF, H, LAYERS, SLOTS, RM_H = 32, 24, 4, 2, 3, 4
VOCAB = ['.', '<unk>'] + [f'w{i}' for i in range(17)]  # V = 19


def _lin(sd, name, n_out, n_in, bias=0.0):
    sd[name + '.weight'] = torch.randn(n_out, n_in) / math.sqrt(n_in)
    sd[name + '.bias'] = torch.randn(n_out) * 0.1 + bias


def _mha(sd, p):
    for i in range(4):
        _lin(sd, f'{p}.linears.{i}', D, D)


def _norm(sd, p):
    sd[p + '.gamma'] = 1 + 0.1 * torch.randn(D)
    sd[p + '.beta'] = 0.1 * torch.randn(D)


def make_r2gen_checkpoint(vocab_size, seed=0):
    """Random weights under R2Gen's ``R2GenModel.state_dict()`` keys."""
    torch.manual_seed(seed)
    extractor = torch.nn.Sequential(
        *list(torchvision.models.resnet18().children())[:-2])
    sd = {
        f'visual_extractor.model.{k}': v
        for k, v in extractor.state_dict().items()
    }
    e = 'encoder_decoder.'
    m = e + 'model.'
    _lin(sd, e + 'att_embed.0', D, 512)
    for i in range(LAYERS):
        p = f'{m}encoder.layers.{i}.'
        _mha(sd, p + 'self_attn')
        _lin(sd, p + 'feed_forward.w_1', DFF, D)
        _lin(sd, p + 'feed_forward.w_2', D, DFF)
        for j in range(2):
            _norm(sd, f'{p}sublayer.{j}.norm')
        p = f'{m}decoder.layers.{i}.'
        _mha(sd, p + 'self_attn')
        _mha(sd, p + 'src_attn')
        _lin(sd, p + 'feed_forward.w_1', DFF, D)
        _lin(sd, p + 'feed_forward.w_2', D, DFF)
        for j in range(3):
            q = f'{p}sublayer.{j}.norm.'
            _norm(sd, q[:-1])
            _lin(sd, q + 'mlp_gamma.0', D, SLOTS * D)
            _lin(sd, q + 'mlp_gamma.2', D, D)
            _lin(sd, q + 'mlp_beta.0', D, SLOTS * D)
            _lin(sd, q + 'mlp_beta.2', D, D)
    _norm(sd, m + 'encoder.norm')
    _norm(sd, m + 'decoder.norm')
    sd[m + 'tgt_embed.0.lut.weight'] = torch.randn(vocab_size + 1, D) * 0.3
    pe = torch.zeros(5000, D)
    pos = torch.arange(5000).float()[:, None]
    div = torch.exp(torch.arange(0, D, 2).float() * -(math.log(1e4) / D))
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    sd[m + 'tgt_embed.1.pe'] = pe[None]
    _mha(sd, m + 'rm.attn')
    _lin(sd, m + 'rm.mlp.0', D, D)
    _lin(sd, m + 'rm.mlp.2', D, D)
    _lin(sd, m + 'rm.W', 2 * D, D)
    _lin(sd, m + 'rm.U', 2 * D, D)
    _lin(sd, e + 'logit', vocab_size + 1, D)
    return dict(
        state_dict=sd,
        epoch=7,
        monitor_best=0.165,
        optimizer=dict(state={}, param_groups=[]))


# ------------------------------------------------ reference (R2Gen's maths)
def ref_norm(x, g, b, eps=1e-6):
    return g * (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) +
                                                 eps) + b


def ref_linear(sd, p, x):
    return x @ sd[p + '.weight'].t() + sd[p + '.bias']


def ref_mha(sd, p, q, k, v, heads, mask=None):
    b, dk = q.size(0), D // heads

    def split(i, x):
        return ref_linear(sd, f'{p}.linears.{i}', x).view(b, -1, heads,
                                                          dk).transpose(1, 2)

    q, k, v = split(0, q), split(1, k), split(2, v)
    s = q @ k.transpose(-2, -1) / math.sqrt(dk)
    if mask is not None:
        s = s.masked_fill(mask.unsqueeze(1) == 0, -1e9)
    x = (s.softmax(-1) @ v).transpose(1, 2).reshape(b, -1, D)
    return ref_linear(sd, f'{p}.linears.3', x)


def ref_ff(sd, p, x):
    return ref_linear(sd, p + '.w_2', F.relu(ref_linear(sd, p + '.w_1', x)))


def ref_mcln(sd, p, x, mem):
    g = sd[p + '.gamma'] + ref_linear(
        sd, p + '.mlp_gamma.2', F.relu(
            ref_linear(sd, p + '.mlp_gamma.0', mem)))
    bt = sd[p + '.beta'] + ref_linear(
        sd, p + '.mlp_beta.2', F.relu(ref_linear(sd, p + '.mlp_beta.0', mem)))
    return ref_norm(x, g, bt)


def ref_rm(sd, p, ys):
    b, t, _ = ys.shape
    mem = torch.cat([torch.eye(SLOTS), torch.zeros(SLOTS, D - SLOTS)], 1)
    mem = mem.expand(b, SLOTS, D)
    out = []
    for i in range(t):
        y = ys[:, i:i + 1]
        kv = torch.cat([mem, y], 1)
        nxt = mem + ref_mha(sd, p + '.attn', mem, kv, kv, RM_H)
        nxt = nxt + F.relu(
            ref_linear(sd, p + '.mlp.2',
                       F.relu(ref_linear(sd, p + '.mlp.0', nxt))))
        gi, gf = (ref_linear(sd, p + '.W', y) +
                  ref_linear(sd, p + '.U', torch.tanh(mem))).split(D, -1)
        mem = torch.sigmoid(gi) * torch.tanh(nxt) + torch.sigmoid(gf) * mem
        out.append(mem.reshape(b, SLOTS * D))
    return torch.stack(out, 1)


def reference_logprobs(sd, extractor, images, tokens):
    """R2Gen forward_iu_xray + EncoderDecoder._forward, eval mode."""
    feats = []
    for v in range(images.size(1)):
        f = extractor(images[:, v])
        feats.append(f.flatten(2).permute(0, 2, 1))
    att = torch.cat(feats, 1)
    e, m = 'encoder_decoder.', 'encoder_decoder.model.'
    x = F.relu(ref_linear(sd, e + 'att_embed.0', att))
    for i in range(LAYERS):
        p = f'{m}encoder.layers.{i}.'
        n = ref_norm(x, sd[p + 'sublayer.0.norm.gamma'],
                     sd[p + 'sublayer.0.norm.beta'])
        x = x + ref_mha(sd, p + 'self_attn', n, n, n, H)
        n = ref_norm(x, sd[p + 'sublayer.1.norm.gamma'],
                     sd[p + 'sublayer.1.norm.beta'])
        x = x + ref_ff(sd, p + 'feed_forward', n)
    hidden = ref_norm(x, sd[m + 'encoder.norm.gamma'],
                      sd[m + 'encoder.norm.beta'])
    seq = tokens[:, :-1]
    t = seq.size(1)
    mask = (seq > 0)
    mask[:, 0] = True
    mask = mask[:, None, :] & torch.ones(t, t, dtype=torch.bool).tril()
    y = sd[m + 'tgt_embed.0.lut.weight'][seq] * math.sqrt(D) + \
        sd[m + 'tgt_embed.1.pe'][:, :t]
    mem = ref_rm(sd, m + 'rm', y)
    x = y
    for i in range(LAYERS):
        p = f'{m}decoder.layers.{i}.'
        n = ref_mcln(sd, p + 'sublayer.0.norm', x, mem)
        x = x + ref_mha(sd, p + 'self_attn', n, n, n, H, mask)
        n = ref_mcln(sd, p + 'sublayer.1.norm', x, mem)
        x = x + ref_mha(sd, p + 'src_attn', n, hidden, hidden, H)
        n = ref_mcln(sd, p + 'sublayer.2.norm', x, mem)
        x = x + ref_ff(sd, p + 'feed_forward', n)
    out = ref_norm(x, sd[m + 'decoder.norm.gamma'],
                   sd[m + 'decoder.norm.beta'])
    return F.log_softmax(ref_linear(sd, e + 'logit', out), -1)


def mmext_model(vocab):
    from mmext.registry import MODELS
    from mmext.utils import register_all_modules
    register_all_modules()
    return MODELS.build(
        dict(
            type='R2GenReportGenerator',
            backbone=dict(type='ResNet', depth=18, out_indices=(3, )),
            neck=dict(type='VisualTokenNeck', in_channels=512),
            head=dict(
                type='R2GenHead',
                d_model=D,
                d_ff=DFF,
                num_layers=LAYERS,
                num_heads=H,
                rm_num_slots=SLOTS,
                rm_num_heads=RM_H,
                rm_d_model=D),
            tokenizer=dict(type='R2GenTokenizer', vocab=vocab)))


@pytest.fixture(scope='module')
def r2gen_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp('r2gen') / 'model_iu_xray.pth'
    torch.save(make_r2gen_checkpoint(len(VOCAB)), path)
    return path


def test_converted_checkpoint_reproduces_r2gen_forward(r2gen_ckpt, tmp_path):
    vocab_file = tmp_path / 'vocab.json'
    vocab_file.write_text(json.dumps(VOCAB))
    dst = tmp_path / 'mmext.pth'
    convert_r2gen_checkpoint(
        str(r2gen_ckpt), str(dst),
        load_r2gen_vocab(vocab_file=str(vocab_file)))
    from mmext.utils import safe_torch_load
    out = safe_torch_load(str(dst))
    assert out['meta']['dataset_meta']['vocab'] == VOCAB
    assert out['meta']['head_args'] == dict(
        in_channels=512,
        d_model=D,
        d_ff=DFF,
        num_layers=LAYERS,
        rm_d_model=D,
        rm_num_slots=SLOTS)

    model = mmext_model(VOCAB).eval()
    missing, unexpected = model.load_state_dict(
        out['state_dict'], strict=False)
    assert not missing and not unexpected

    sd = torch.load(r2gen_ckpt, weights_only=True)['state_dict']
    extractor = torch.nn.Sequential(
        *list(torchvision.models.resnet18().children())[:-2])
    extractor.load_state_dict({
        k[len('visual_extractor.model.'):]: v
        for k, v in sd.items() if k.startswith('visual_extractor.')
    })
    extractor.eval()
    torch.manual_seed(1)
    images = torch.randn(2, 2, 3, 64, 64)
    tokens = torch.tensor([[0, 3, 5, 7, 1, 0, 0, 0],
                           [0, 9, 4, 4, 12, 18, 1, 0]])
    with torch.no_grad():
        ref = reference_logprobs(sd, extractor, images, tokens)
        got = model.head(model.extract_feat(images), tokens)
    assert got.shape == ref.shape == (2, 7, len(VOCAB) + 1)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_vocab_size_mismatch_names_both_sizes(r2gen_ckpt, tmp_path):
    with pytest.raises(R2GenConversionError, match=r'19 tokens .* has 21'):
        convert_r2gen_checkpoint(
            str(r2gen_ckpt), str(tmp_path / 'x.pth'), VOCAB + ['a', 'b'])
    assert not (tmp_path / 'x.pth').exists()
    # loading converted weights into a model with another vocabulary
    sd = convert_r2gen_state_dict(
        torch.load(r2gen_ckpt, weights_only=True)['state_dict'])
    model = mmext_model(VOCAB[:-3])
    with pytest.raises(ValueError, match=r'19 tokens .* tokenizer has 16'):
        model.load_state_dict(sd, strict=False)


def test_data_parallel_prefix_and_foreign_keys():
    sd = {
        'module.visual_extractor.model.4.0.conv1.weight': torch.zeros(1),
        'module.encoder_decoder.logit.bias': torch.zeros(3)
    }
    assert set(convert_r2gen_state_dict(sd)) == {
        'backbone.layer1.0.conv1.weight', 'head.logit.bias'
    }
    with pytest.raises(R2GenConversionError, match='not R2Gen keys'):
        convert_r2gen_state_dict({'fc.weight': torch.zeros(1)})


def test_cli_without_vocabulary_explains(r2gen_ckpt, tmp_path):
    proc = run_tool([TOOL, r2gen_ckpt, tmp_path / 'o.pth'],
                    cwd=tmp_path,
                    check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]  # after mmcv's warning
    assert last.startswith('r2gen_to_mmext: give --ann-file')
    assert 'do not contain their vocabulary' in last
    assert not (tmp_path / 'o.pth').exists()


def test_config_check_loads_strictly_or_names_the_sizes(r2gen_ckpt, tmp_path):
    ref = ROOT / 'configs/r2gen/r2gen_resnet101_1xb16_iu-xray.py'
    small = tmp_path / 'r2gen_small.py'
    small.write_text(
        f'_base_ = [{str(ref)!r}]\n'
        'model = dict(backbone=dict(depth=18), neck=dict(in_channels=512),\n'
        f'    head=dict(d_model={D}, d_ff={DFF}, num_layers={LAYERS},\n'
        f'              num_heads={H}, rm_num_heads={RM_H},\n'
        f'              rm_d_model={D}))\n')
    out = tmp_path / 'o.pth'
    convert_r2gen_checkpoint(str(r2gen_ckpt), str(out), VOCAB, str(small))
    assert out.is_file()
    out.unlink()
    with pytest.raises(R2GenConversionError) as e:
        convert_r2gen_checkpoint(str(r2gen_ckpt), str(out), VOCAB, str(ref))
    assert 'mismatched keys' in str(e.value)
    assert "'d_model': 32" in str(e.value)
    assert not out.exists()
