# Copyright (c) mmext contributors. All rights reserved.
import pytest
import torch
from mmpretrain.structures import DataSample

from mmext.models.multimodal.r2gen import R2GenHead, ReportDataPreprocessor
from mmext.registry import MODELS
from mmext.utils import register_all_modules

register_all_modules()
VOCAB = [
    '.', '<unk>', 'heart', 'normal', 'size', 'no', 'effusion', 'lungs',
    'clear', 'is', 'in'
]


def build(backbone=None, neck=None, freeze=None, **head):
    head = dict(
        dict(
            type='R2GenHead',
            d_model=16,
            d_ff=16,
            num_layers=1,
            num_heads=2,
            rm_num_heads=2,
            rm_d_model=16), **head)
    return MODELS.build(
        dict(
            type='R2GenReportGenerator',
            backbone=backbone
            or dict(type='ResNet', depth=18, out_indices=(3, )),
            neck=neck or dict(type='VisualTokenNeck', in_channels=512),
            head=head,
            freeze=freeze,
            max_seq_length=10,
            tokenizer=dict(type='R2GenTokenizer', vocab=VOCAB),
            data_preprocessor=dict(
                type='ReportDataPreprocessor', mean=[120] * 3, std=[60] * 3)))


def samples(token_lists):
    out = []
    for toks in token_lists:
        s = DataSample()
        s.set_field(torch.tensor(toks), 'gt_tokens', field_type='data')
        out.append(s)
    return out


def test_loss_is_r2gen_language_model_criterion():
    torch.manual_seed(0)
    model = build().eval()  # no dropout: both paths see the same numbers
    images = torch.rand(2, 2, 3, 32, 32)
    tokens = [[0, 3, 10, 4, 1, 0], [0, 8, 9, 1, 0]]  # lengths 6 and 5
    loss = model.loss(images, samples(tokens))['loss']
    logp = model(images, samples(tokens), mode='tensor')  # B, T-1, V+1
    nll, count = 0.0, 0
    for i, toks in enumerate(tokens):
        for pos in range(1, len(toks)):  # every real token incl. EOS
            nll -= logp[i, pos - 1, toks[pos]].item()
            count += 1
    assert loss.item() == pytest.approx(nll / count, rel=1e-6)


def test_training_learns_and_frozen_backbone_stays_fixed():
    torch.manual_seed(0)
    model = build(
        backbone=dict(
            type='ResNet',
            depth=18,
            stem_channels=8,
            base_channels=8,
            out_indices=(3, )),
        neck=dict(type='VisualTokenNeck', in_channels=64),
        freeze=dict(frozen_stages='all'),
        dropout=0.0,
        drop_prob_lm=0.0)
    frozen = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = model.head.logit.weight.clone()
    images = torch.stack(
        [torch.zeros(2, 3, 32, 32),
         torch.full((2, 3, 32, 32), 255.)])
    data = samples([[0, 3, 10, 4, 1, 0], [0, 8, 9, 1, 0]])
    params = [p for p in model.parameters() if p.requires_grad]
    assert not any(p.requires_grad for p in model.backbone.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    model.train()
    first = None
    for _ in range(60):
        loss = model.loss(images, data)['loss']
        first = first or loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, frozen[k]), k  # incl. BN running stats
    assert not torch.equal(model.head.logit.weight, head_before)
    model.eval()
    out = model.predict(images, samples([[0, 1, 0], [0, 1, 0]]))
    assert out[0].pred_report == 'heart is normal .'
    assert out[1].pred_report == 'lungs clear .'


def test_predict_sets_tokens_and_report_consistently():
    torch.manual_seed(1)
    model = build().eval()
    out = model.predict(torch.rand(3, 2, 3, 32, 32))
    for s in out:
        ids = s.pred_tokens.tolist()
        assert 0 not in ids and len(ids) <= 10
        assert s.pred_report == model.tokenizer.decode(ids + [0])


def test_head_width_follows_any_backbone():
    # ViT-B/16 (768-d) where R2Gen's ResNet-101 gives 2048-d features
    vit = dict(
        type='VisionTransformer',
        img_size=32,
        patch_size=8,
        out_type='raw',
        arch=dict(
            embed_dims=24, num_layers=1, num_heads=2, feedforward_channels=24))
    model = build(
        backbone=vit,
        neck=dict(type='VisualTokenNeck', in_channels=24, cls='keep'))
    assert model.head.in_channels == 24
    assert model.extract_feat(torch.rand(2, 2, 3, 32, 32)).shape == (2, 34, 24)
    # without a CLS token nothing is dropped (the neck follows the ViT)
    no_cls = build(
        backbone=dict(vit, with_cls_token=False),
        neck=dict(type='VisualTokenNeck', in_channels=24))
    assert no_cls.neck.num_prefix_tokens == 0
    assert no_cls.extract_feat(torch.rand(1, 2, 3, 32,
                                          32)).shape == (1, 32, 24)
    with pytest.raises(
            ValueError,
            match='neck gives 24-d tokens but '
            'head.in_channels=2048'):
        build(
            backbone=vit,
            neck=dict(type='VisualTokenNeck', in_channels=24),
            in_channels=2048)


def test_r2gen_initialisation_and_memory_init():
    head = R2GenHead(
        vocab_size=5,
        in_channels=8,
        d_model=16,
        d_ff=16,
        num_layers=1,
        num_heads=2,
        rm_num_heads=2,
        rm_d_model=16)
    norm = head.model.decoder.layers[0].sublayer[0].norm
    assert torch.all(norm.mlp_gamma[0].bias == 0.1)
    assert torch.all(norm.mlp_beta[2].bias == 0.1)
    mem = head.model.rm.init_memory(2, torch.zeros(1)).view(2, 3, 16)
    assert torch.equal(mem[0, :, :3], torch.eye(3))
    assert not mem[:, :, 3:].any()
    assert not any('pe' in k.split('.')[-1] for k in head.state_dict())
    with pytest.raises(ValueError, match='rm_d_model .* must equal'):
        R2GenHead(vocab_size=5, d_model=16, rm_d_model=32)


def test_state_dict_round_trip_generates_the_same(tmp_path):
    from mmext.utils import safe_torch_load
    torch.manual_seed(2)
    model = build().eval()
    images = torch.rand(2, 2, 3, 32, 32)
    torch.save(model.state_dict(), tmp_path / 'm.pth')
    torch.manual_seed(3)
    other = build().eval()
    # differently initialised: the equality below must come from the load
    assert not torch.equal(model(images), other(images))
    other.load_state_dict(safe_torch_load(tmp_path / 'm.pth'))
    assert torch.equal(model(images), other(images))
    assert torch.equal(
        model.generate(model.extract_feat(images)),
        other.generate(other.extract_feat(images)))


def test_data_preprocessor_stacks_views_and_normalises():
    pre = ReportDataPreprocessor(mean=[10, 20, 30], std=[2, 4, 5], to_rgb=True)
    views = [
        torch.randint(0, 255, (2, 3, 4, 4), dtype=torch.uint8)
        for _ in range(3)
    ]
    out = pre(dict(inputs=views, data_samples=None))['inputs']
    want = torch.stack(views).float().flip(2)
    want = (want - torch.tensor([10., 20, 30]).view(3, 1, 1)) / \
        torch.tensor([2., 4, 5]).view(3, 1, 1)
    torch.testing.assert_close(out, want)
    with pytest.raises(ValueError, match='differ in shape'):
        pre(dict(inputs=[views[0], views[1][:, :, :2]]))
