# Copyright (c) mmext contributors. All rights reserved.
"""ViLBERT: streams equal their standalone models, schedule outputs,
per-layer representations, freezing, weights, losses."""
import os
import pickle

import pytest
import torch
import torch.nn.functional as F

from mmext.models.multimodal.vilbert import build_bert, info_nce, select_tokens
from mmext.registry import MODELS
from mmext.testing.bert import make_bert_folder
from mmext.testing.vilbert import TINY_VIT as VIT
from mmext.testing.vilbert import fixed_batch, tiny_vilbert
from mmext.utils.checkpoint import UnsafeCheckpointError, safe_torch_load


def test_baseline_streams_equal_bert_and_vit(bert_dir):
    """No co-attention: the text stream is the folder's BERT and the
    vision stream mmpretrain's ViT, run layer by layer."""
    model = tiny_vilbert(bert_dir, coattention=dict(preset='none')).eval()
    x = fixed_batch()
    with torch.no_grad():
        out = model.extract_feat(x)
        bert, _ = build_bert(str(bert_dir))
        bert.eval()
        ref_t = bert(
            input_ids=x['input_ids'], attention_mask=x['attention_mask'])[0]
        vit = MODELS.build(dict(VIT, out_type='raw'))
        vit.load_state_dict(model.visual.backbone.state_dict())
        vit.eval()
        ref_v = vit(x['img'])[0]
    keep = x['attention_mask'].bool()
    assert (out['text'][keep] - ref_t[keep]).abs().max() < 1e-5
    assert (out['vision'] - ref_v).abs().max() < 1e-5


def test_coattention_changes_both_streams_where_scheduled(bert_dir):
    model = tiny_vilbert(bert_dir).eval()
    x = fixed_batch()
    with torch.no_grad():
        out = model.extract_feat(x, return_layers=True)
        y = dict(x, img=torch.randn_like(x['img']))
        other = model.extract_feat(y, return_layers=True)
    assert model.steps == [('text', 0), ('vision', 0), ('coattn', 0),
                           ('vision', 1), ('text', 1)]
    # text before the block does not see the image, after it does
    assert torch.equal(out['text_layers'][0], other['text_layers'][0])
    assert not torch.allclose(out['coattn_layers'][0]['text'],
                              other['coattn_layers'][0]['text'])
    assert not torch.allclose(out['text'], other['text'])


def test_per_layer_outputs_one_forward(bert_dir):
    model = tiny_vilbert(bert_dir).eval()
    x = fixed_batch()
    with torch.no_grad():
        plain = model.extract_feat(x)
        out = model.extract_feat(x, return_layers=True)
    assert 'text_layers' not in plain
    assert len(out['text_layers']) == 2 and len(out['vision_layers']) == 2
    co = out['coattn_layers'][0]
    assert (co['text_id'], co['vision_id']) == (1, 1)
    # the co-attention output is what the next layers consumed
    with torch.no_grad():
        v1 = model.visual.layer(1, co['vision'])
    assert torch.allclose(v1, out['vision_layers'][1], atol=1e-6)
    assert torch.equal(out['text_layers'][1], out['text'])
    assert torch.equal(out['text'], plain['text'])
    assert out['embeddings']['vision'].shape == (4, 17, 32)
    for key, dims in (('pooled_text', 16), ('pooled_vision', 16), ('fused',
                                                                   16)):
        assert out[key].shape == (4, dims)
    assert model.fused_dims == 16


def test_text_padding_is_masked(bert_dir):
    model = tiny_vilbert(bert_dir).eval()
    x = fixed_batch()
    y = dict(x, input_ids=x['input_ids'].clone())
    y['input_ids'][1, -2:] = 42  # change only the padding
    with torch.no_grad():
        a, b = model.extract_feat(x), model.extract_feat(y)
    assert torch.allclose(a['vision'], b['vision'], atol=1e-5)
    assert torch.allclose(a['text'][1, :-2], b['text'][1, :-2], atol=1e-5)


# a tiny regions-mode visual stream (8-d region features)
REGION_STREAM = dict(
    type='RegionVisualStream',
    feature_dims=8,
    embed_dims=24,
    num_layers=2,
    num_heads=2,
    ffn_dims=32)


def test_regions_mode_mean_token_and_absent_regions(bert_dir):
    model = tiny_vilbert(
        bert_dir,
        visual=REGION_STREAM,
        losses=dict(mrm=1.0),
        num_region_classes=5).eval()
    g = torch.Generator().manual_seed(0)
    feats, locs = torch.rand(2, 3, 8, generator=g), torch.rand(2, 3, 5)
    x = fixed_batch(b=2)
    x.update(
        region_feats=feats, region_locs=locs, region_mask=torch.ones(2, 3))
    # the same regions plus one absent, random region
    y = dict(
        x,
        region_feats=torch.cat([feats, torch.rand(2, 1, 8)], 1),
        region_locs=torch.cat([locs, torch.rand(2, 1, 5)], 1),
        region_mask=torch.tensor([[1., 1, 1, 0], [1, 1, 1, 0]]))
    with torch.no_grad():
        a, b = model.extract_feat(x), model.extract_feat(y)
        emb = model.visual.embed(
            dict(feats=feats, locs=locs, mask=torch.ones(2, 3)))[0]
        vis = model.visual
        ref0 = vis.norm(
            vis.feat_embed(feats.mean(1)) +
            vis.loc_embed(torch.tensor([0., 0, 1, 1, 1])))
    assert a['vision'].shape == (2, 4, 24)  # global + 3 regions
    assert torch.allclose(emb[:, 0], ref0, atol=1e-5)
    assert torch.allclose(a['vision'], b['vision'][:, :4], atol=1e-5)
    assert torch.allclose(a['text'], b['text'], atol=1e-5)


def test_cnn_backbone_through_visual_token_neck(bert_dir):
    model = tiny_vilbert(
        bert_dir,
        visual=dict(
            type='PatchVisualStream',
            embed_dims=64,
            num_extra_layers=1,
            extra_layer=dict(num_heads=2),
            backbone=dict(
                type='ResNet', depth=18, base_channels=8, stem_channels=8)),
        coattention=dict(
            text_ids=[1], vision_ids=[0], bi_dims=16, num_heads=2))
    assert not model.visual.split and model.visual.num_layers == 1
    x = fixed_batch()
    out = model.extract_feat(x)
    assert out['vision'].shape == (4, 1 + 1, 64)  # global + 1x1 map at 32px


def test_freezing_both_streams(bert_dir):
    model = tiny_vilbert(
        bert_dir,
        text=dict(folder=str(bert_dir), frozen_stages=1),
        visual=dict(
            type='PatchVisualStream',
            embed_dims=32,
            backbone=dict(
                type='PartialFreeze', backbone=VIT, frozen_stages='all')))
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any(n.startswith('bert.embeddings.') for n in frozen)
    assert any(n.startswith('bert.encoder.layer.0.') for n in frozen)
    assert not any(n.startswith('bert.encoder.layer.1.') for n in frozen)
    assert all(not p.requires_grad for p in model.visual.backbone.parameters())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                          lr=0.1)
    model.train()
    sum(model.loss(fixed_batch()).values()).backward()
    opt.step()
    after = dict(model.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in frozen)
    assert not torch.equal(before['coattn.0.text_q.weight'],
                           after['coattn.0.text_q.weight'])


def test_bert_folder_safetensors_and_bin_agree(tmp_path):
    a = make_bert_folder(tmp_path / 'st', seed=3)
    b = make_bert_folder(tmp_path / 'bin', seed=3, weights='bin')
    ma, head_a = build_bert(str(a))
    mb, head_b = build_bert(str(b))
    sa, sb = ma.state_dict(), mb.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(head_a['transform.dense.weight'],
                       head_b['transform.dense.weight'])
    # the original bert-base-uncased naming (LayerNorm gamma / beta, a
    # stored position_ids) loads too; a foreign key is refused
    state = {
        k.replace('LayerNorm.weight',
                  'LayerNorm.gamma').replace('LayerNorm.bias',
                                             'LayerNorm.beta'): v
        for k, v in safe_torch_load(str(b / 'pytorch_model.bin')).items()
    }
    state['bert.embeddings.position_ids'] = torch.arange(64)[None]
    torch.save(state, b / 'pytorch_model.bin')
    mc, _ = build_bert(str(b))
    assert all(torch.equal(sa[k], mc.state_dict()[k]) for k in sa)
    state['bert.encoder.layer.9.output.dense.weight'] = torch.zeros(1)
    torch.save(state, b / 'pytorch_model.bin')
    with pytest.raises(ValueError, match='do not match its config.json'):
        build_bert(str(b))


class _Exploit:

    def __reduce__(self):
        return (os.system, ('touch /tmp/should_not_exist_vilbert', ))


def test_unsafe_bin_refused_without_running_it(tmp_path):
    folder = make_bert_folder(tmp_path / 'evil', weights=None)
    with open(folder / 'pytorch_model.bin', 'wb') as f:
        pickle.dump({'x': _Exploit()}, f)
    marker = '/tmp/should_not_exist_vilbert'
    if os.path.exists(marker):
        os.remove(marker)
    with pytest.raises(UnsafeCheckpointError, match='nothing was executed'):
        build_bert(str(folder))
    assert not os.path.exists(marker)


def test_missing_bert_folder_names_it_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        build_bert('bert-base-uncased')
    msg = str(err.value)
    assert 'pretrain_pth/bert-base-uncased' in msg
    assert 'huggingface-cli download' in msg


def test_mlm_head_is_tied_to_word_embeddings(bert_dir):
    model = tiny_vilbert(bert_dir)
    emb = model.bert.embeddings.word_embeddings.weight
    assert not any(p is emb for n, p in model.mlm_head.named_parameters())
    model.loss(fixed_batch())['loss_mlm'].backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0
    # the MLM head carries the pre-training checkpoint's transform
    _, head = build_bert(str(bert_dir))
    assert torch.equal(model.mlm_head.transform.dense.weight,
                       head['transform.dense.weight'])


def test_info_nce_hand_computed():
    q = torch.tensor([[1., 0.], [0., 2.], [1., 1.]])
    k = torch.tensor([[2., 0.], [1., 1.], [0., 1.]])
    qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
    loss = 0.
    for i in range(3):
        logits = [float(qn[i] @ kn[j]) / 0.1 for j in range(3)]
        m = max(logits)
        lse = m + torch.log(
            torch.tensor([sum(torch.exp(torch.tensor(v - m))
                              for v in logits)])).item()
        loss += lse - logits[i]
    assert abs(info_nce(q, k, 0.1).item() - loss / 3) < 1e-5


def test_select_tokens():
    mask = torch.tensor([[True, False, False]])
    assert select_tokens(mask, 'unmasked').tolist() == [[1, 0, 1, 1]]
    assert select_tokens(mask, 'masked', False).tolist() == [[0, 1, 0, 0]]
    assert select_tokens(mask, 'all').tolist() == [[1, 1, 1, 1]]
    with pytest.raises(ValueError, match='unmasked'):
        select_tokens(mask, 'some')


def test_region_loss_hand_computed():
    logits = torch.tensor([[[0., 1., 2.], [1., 1., 1.]]])
    target = torch.tensor([[[0.2, 0.3, 0.5], [1., 0., 0.]]])
    mask = torch.tensor([[True, False]])
    logp = torch.log_softmax(logits, -1)[0, 0]
    kl = sum(t * (torch.log(t) - lp) for t, lp in zip(target[0, 0], logp))
    from mmext.models.multimodal.vilbert import ViLBERT
    assert abs(ViLBERT.region_loss(logits, target, mask) - kl) < 1e-6
    assert ViLBERT.region_loss(logits, target, ~mask & False) == 0


def test_every_loss_decreases_on_a_fixed_batch(bert_dir):
    torch.manual_seed(0)
    model = tiny_vilbert(bert_dir)
    x = fixed_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.eval()  # no dropout: the same batch gives the same loss
    with torch.no_grad():
        first = {k: v.item() for k, v in model.loss(x).items()}
    assert set(first) == {'loss_mlm', 'loss_itm', 'loss_mim'}
    for _ in range(25):
        opt.zero_grad()
        sum(model.loss(x).values()).backward()
        opt.step()
    with torch.no_grad():
        last = {k: v.item() for k, v in model.loss(x).items()}
    for k in first:
        assert last[k] < 0.85 * first[k], (k, first[k], last[k])


def test_switching_losses_and_weights(bert_dir):
    model = tiny_vilbert(bert_dir, losses=dict(mlm=0.5, itm=0, mim=None))
    assert not hasattr(model, 'itm_head')
    x = fixed_batch()
    full = tiny_vilbert(bert_dir)
    full.load_state_dict(model.state_dict(), strict=False)
    model.eval()
    full.eval()
    losses = model.loss(x)
    assert set(losses) == {'loss_mlm'}
    assert torch.allclose(losses['loss_mlm'], 0.5 * full.loss(x)['loss_mlm'])


def test_bad_config_refused(bert_dir):
    with pytest.raises(ValueError, match='outside 0..2'):
        tiny_vilbert(bert_dir, coattention=dict(preset='late'))
    with pytest.raises(ValueError, match="fusion='mul'"):
        tiny_vilbert(
            bert_dir,
            pooler='cls',
            visual=dict(
                type='RegionVisualStream',
                feature_dims=8,
                embed_dims=24,
                num_layers=1,
                num_heads=2,
                ffn_dims=8))
    model = tiny_vilbert(bert_dir, mim=dict(tokens='unmasked'))
    x = fixed_batch(patches=4)
    with pytest.raises(ValueError, match='patch size'):
        model.loss(x)


def test_regions_mode_mrm_without_targets_is_refused(bert_dir):
    """Released BUTD TSVs carry no cls_prob: with losses.mrm on, a batch
    without region_targets must not silently train without the loss."""
    model = tiny_vilbert(
        bert_dir,
        visual=REGION_STREAM,
        losses=dict(mrm=1.0),
        num_region_classes=5)
    x = fixed_batch(b=2)
    x.update(
        region_feats=torch.rand(2, 3, 8),
        region_locs=torch.rand(2, 3, 5),
        region_mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match='set model.losses.mrm=0'):
        model.loss(x)
    x.update(
        region_targets=torch.softmax(torch.rand(2, 3, 5), -1),
        mrm_mask=torch.ones(2, 3, dtype=torch.bool))
    assert 'loss_mrm' in model.loss(x)
