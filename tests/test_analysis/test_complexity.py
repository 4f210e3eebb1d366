# Copyright (c) mmext contributors. All rights reserved.
"""mmext.analysis.model_complexity and tools/analysis_tools/get_flops.py."""
import pytest
import torch
from mmengine.config import Config

from mmext.analysis.complexity import (PLACEHOLDER_VOCAB, analysis_config,
                                       count_flops, model_complexity)
from mmext.testing.bert import TINY_BERT
from mmext.testing.vilbert import TINY_VIT
from mmext.utils import register_all_modules
from tests.conftest import ROOT, TINY_CONFIG, TINY_R2GEN_CONFIG, run_tool

register_all_modules(init_default_scope=False)
EMPTY = Config(dict())


def _tiny_vilbert():
    from mmext.registry import MODELS
    return MODELS.build(
        dict(
            type='ViLBERT',
            text=dict(config=dict(TINY_BERT, vocab_size=50)),
            visual=dict(
                type='PatchVisualStream', backbone=TINY_VIT, embed_dims=32),
            coattention=dict(
                text_ids=[1], vision_ids=[1], bi_dims=16, num_heads=2),
            pooled_dims=16)).eval()


def _bert_hand_count(t, d=32, ff=64, layers=2):
    """Multiply-adds of a BERT encoder on ``t`` tokens: Q, K, V, O and the
    FFN (linear), q k^T and attn v (2 t^2 d), and 5 per element for each
    affine LayerNorm (mmengine's norm handle; embeddings + 2 per layer)."""
    linear = t * (4 * d * d + 2 * d * ff)
    attention = 2 * t * t * d
    return layers * (linear + attention) + (2 * layers + 1) * 5 * t * d


@pytest.mark.parametrize('t', [4, 9])
def test_vilbert_text_stream_is_the_hand_count(t):
    model = _tiny_vilbert()
    cx = model_complexity(
        EMPTY, (3, 32, 32), model=model, text_len=t, num_regions=1)
    parts = {p.name: p for p in cx.parts}
    assert parts['text stream (BERT)'].flops == _bert_hand_count(t)
    assert parts['text stream (BERT)'].params == sum(
        p.numel() for p in model.bert.parameters())
    # both streams and the co-attention block are counted, and only they
    # (plus the poolers) carry FLOPs in the tensor path
    assert parts['vision stream'].flops > 0
    assert parts['co-attention'].flops > 0
    assert 'other' not in parts
    assert sum(p.flops for p in cx.parts) == cx.total_flops
    assert sum(p.params for p in cx.parts) == cx.total_params
    # the co-attention block grows with the text, the vision stream not
    longer = model_complexity(
        EMPTY, (3, 32, 32), model=model, text_len=t + 3, num_regions=1)
    more = {p.name: p.flops for p in longer.parts}
    assert more['vision stream'] == parts['vision stream'].flops
    assert more['co-attention'] > parts['co-attention'].flops


def test_vilbert_takes_a_bare_tensor_as_mmpretrain_get_flops_does():
    """The path of mmpretrain's get_flops (``forward = extract_feat`` on one
    image tensor) runs; the text is then one token."""
    from mmengine.analysis import get_model_complexity_info
    model = _tiny_vilbert()
    model.forward = model.extract_feat
    info = get_model_complexity_info(
        model, (3, 32, 32), show_table=False, show_arch=False)
    assert info['flops'] > 0
    one_token = model_complexity(
        EMPTY, (3, 32, 32), model=_tiny_vilbert(), text_len=1)
    bare, _ = count_flops(
        model.extract_feat, [torch.randn(1, 3, 32, 32)], m=model)
    assert bare == one_token.total_flops
    with pytest.raises(TypeError, match='dict .* or a tensor'):
        model.extract_feat([1, 2])


def test_r2gen_counts_without_the_annotation_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/tiny_iu_xray here
    cfg, notes = analysis_config(str(TINY_R2GEN_CONFIG))
    assert any('placeholder' in n for n in notes)
    cx = model_complexity(str(TINY_R2GEN_CONFIG), (3, 32, 32), max_steps=3)
    parts = {p.name: p for p in cx.parts}
    d = 64  # the tiny head's d_model
    v = PLACEHOLDER_VOCAB['iu_xray']
    assert parts['decoder: full report'].params >= (v + 1) * (d + 1)
    assert cx.total_flops == sum(p.flops for p in cx.parts if p.in_total)
    assert not parts['decoder: one step'].in_total
    # 3 tokens = the set-up (encoder keys / values, memory) + 3 first
    # steps + the longer self-attention of steps 1 and 2: q k^T and attn v
    # over t + 1 cached keys, 2 d more multiply-adds per row per step
    one = parts['decoder: one step'].flops
    full = parts['decoder: full report'].flops
    setup = {
        p.name: p.flops
        for p in model_complexity(
            str(TINY_R2GEN_CONFIG), (3, 32, 32), max_steps=1).parts
    }['decoder: full report'] - one
    assert setup > 0
    beams, layers = 2, 1  # the tiny config
    assert full == setup + 3 * one + beams * layers * 2 * d * (1 + 2)
    # a step costs the same per beam
    cfg = Config.fromfile(str(TINY_R2GEN_CONFIG))
    cfg.model.decode = dict(strategy='beam', beam_size=4)
    four = model_complexity(cfg, (3, 32, 32), max_steps=1)
    cfg.model.decode = dict(strategy='greedy')
    greedy = model_complexity(cfg, (3, 32, 32), max_steps=1)
    step = {p.name: p.flops for p in four.parts}['decoder: one step']
    assert step == 4 * {p.name: p.flops
                        for p in greedy.parts}['decoder: one step']
    # the given vocabulary size replaces the placeholder
    bigger = model_complexity(
        str(TINY_R2GEN_CONFIG), (3, 32, 32), max_steps=1, vocab_size=v + 100)
    # embedding (d) and logit (d + 1) rows per token
    assert bigger.total_params == cx.total_params + 100 * (2 * d + 1)


def _tiny_butd(post_nms):
    return Config(
        dict(
            model=dict(
                type='BUTDFasterRCNN',
                stage_blocks=(1, 1, 1, 1),
                base_channels=8,
                rpn_channels=16,
                test_cfg=dict(post_nms_top_n=post_nms))))


def test_butd_box_head_is_per_roi_times_rois():
    ten = model_complexity(_tiny_butd(10), (3, 64, 96))
    twenty = model_complexity(_tiny_butd(20), (3, 64, 96))
    a = {p.name: p.flops for p in ten.parts}
    b = {p.name: p.flops for p in twenty.parts}
    assert b['backbone (res1-res4)'] == a['backbone (res1-res4)'] > 0
    assert b['RPN head'] == a['RPN head'] > 0
    assert b['box head res5'] == 2 * a['box head res5'] > 0
    assert b['box predictors'] == 2 * a['box predictors'] > 0
    # the RPN head: a 3x3 conv (res4: 8 * 16 = 128 -> 16 channels) and two
    # 1x1 convs (12 anchors: 12 logits, 48 deltas) on the 4 x 6 C4 map
    assert a['RPN head'] == 4 * 6 * (128 * 9 * 16 + 16 * (12 + 48))
    assert ten.total_params == twenty.total_params


def test_classifier_total_is_extract_feat_plus_head():
    """The generic path adds the head to what get_flops counts."""
    from mmext.apis.metafile import count_complexity
    cx = model_complexity(str(TINY_CONFIG), (3, 64, 64))
    feat = count_complexity(str(TINY_CONFIG), 64)
    head = {p.name: p for p in cx.parts}['head']
    assert head.flops == 512 * 3  # resnet18 features -> 3 classes
    assert cx.total_flops == feat['flops'] + head.flops
    assert cx.total_params == feat['params']


def test_get_flops_cli(tmp_path):
    out = run_tool([
        ROOT / 'tools/analysis_tools/get_flops.py', TINY_R2GEN_CONFIG,
        '--shape', '32', '--max-steps', '2'
    ], tmp_path).stdout
    assert 'decoder: full report' in out and 'placeholder' in out
    assert out.splitlines()[1].startswith('inputs: one study: 2 view(s) '
                                          '(3, 32, 32), 2 tokens')
    bad = run_tool([
        ROOT / 'tools/analysis_tools/get_flops.py', TINY_CONFIG, '--shape',
        '1', '2', '3'
    ],
                   tmp_path,
                   check=False)
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines() == [
        'get_flops: --shape [1, 2, 3]: give H W or one size, e.g. --shape '
        '224 224'
    ]
    missing = run_tool([ROOT / 'tools/analysis_tools/get_flops.py', 'nope.py'],
                       tmp_path,
                       check=False)
    assert missing.returncode != 0
    assert len(missing.stderr.strip().splitlines()) == 1
