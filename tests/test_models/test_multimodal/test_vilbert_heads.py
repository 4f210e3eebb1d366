# Copyright (c) mmext contributors. All rights reserved.
"""ViLBERT heads on transformers' parts: keys, tying and initialisation."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmext.models.multimodal.vilbert.coattention import bert_init_
from mmext.models.multimodal.vilbert.heads import MLMHead, RegionHead


def test_mlm_head_keys_unchanged_and_tied():
    emb = nn.Embedding(50, 8)
    head = MLMHead(emb)
    # released checkpoints / the converter use exactly these keys
    assert sorted(head.state_dict()) == [
        'bias', 'transform.LayerNorm.bias', 'transform.LayerNorm.weight',
        'transform.dense.bias', 'transform.dense.weight'
    ]
    assert all(p is not emb.weight for p in head.parameters())
    x = torch.randn(2, 3, 8)
    h = head.transform.LayerNorm(F.gelu(head.transform.dense(x)))
    torch.testing.assert_close(head(x), h @ emb.weight.t() + head.bias)
    with torch.no_grad():  # the tie follows the embeddings' weight
        emb.weight.mul_(2)
    torch.testing.assert_close(head(x), h @ emb.weight.t() + head.bias)


def test_region_head_keys_unchanged():
    assert sorted(RegionHead(8, 5).state_dict()) == [
        'fc.bias', 'fc.weight', 'transform.LayerNorm.bias',
        'transform.LayerNorm.weight', 'transform.dense.bias',
        'transform.dense.weight'
    ]


def test_bert_init():
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Linear(200, 300), nn.LayerNorm(300),
        nn.Embedding(400, 300, padding_idx=0))
    with torch.no_grad():
        m[1].weight.fill_(3)
        m[1].bias.fill_(3)
    bert_init_(m, std=0.05)
    assert abs(m[0].weight.std().item() - 0.05) < 2e-3
    assert abs(m[2].weight[1:].std().item() - 0.05) < 2e-3
    assert not m[0].bias.any() and not m[2].weight[0].any()
    assert (m[1].weight == 1).all() and not m[1].bias.any()
