# Copyright (c) mmext contributors. All rights reserved.
"""Per-layer collection (forward hooks and model outputs), pooling, and the
AlignmentHook in a real training run."""
import json

import pytest
import torch
from mmengine.config import Config

from mmext.analysis import (TWO_STREAM_SIDES, collect_representations,
                            collect_sides, default_taps, model_taps,
                            parse_taps, pool)
from mmext.registry import MODELS
from mmext.utils import register_all_modules
from tests.conftest import ROOT

register_all_modules(init_default_scope=False)


def _resnet_classifier():
    cfg = Config.fromfile(ROOT / 'configs/_base_/models/resnet18_3cls.py')
    model = MODELS.build(cfg.model)
    model.eval()
    return model


def _image_batches(n_batches=3, b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    from mmpretrain.structures import DataSample
    batches = []
    for i in range(n_batches):
        imgs = torch.randint(
            0, 255, (b, 3, 32, 32), generator=g, dtype=torch.uint8)
        samples = [
            DataSample(metainfo=dict(img_path=f'{i}_{j}.png'))
            for j in range(b)
        ]
        batches.append(dict(inputs=list(imgs), data_samples=samples))
    return batches


def test_parse_taps_ranges_tuples_and_unknown_modules():
    model = _resnet_classifier()
    taps = parse_taps(['backbone.layer1-3', 'neck'], model)
    assert [t.name for t in taps] == [
        'backbone.layer1', 'backbone.layer2', 'backbone.layer3', 'neck'
    ]
    tap = parse_taps(['a.b.2-4:1'])[1]
    assert (tap.name, tap.module, tap.index) == ('a.b.3:1', 'a.b.3', 1)
    with pytest.raises(ValueError, match="backbone.layer9.*close"):
        parse_taps(['backbone.layer9'], model)
    assert [t.name for t in default_taps(model)] == [
        'backbone.layer1', 'backbone.layer2', 'backbone.layer3',
        'backbone.layer4'
    ]


def test_hooks_record_what_the_model_computes():
    model = _resnet_classifier()
    batches = _image_batches()
    taps = parse_taps(['backbone.layer2', 'backbone.layer4'], model)
    feats, ids = collect_representations(
        model, batches, taps, 'mean', max_samples=10, progress=False)
    assert ids == [f'{i}_{j}.png' for i in range(3) for j in range(4)][:10]
    assert feats['backbone.layer2'].shape == (10, 128)
    # the classifier's own neck output is the mean-pooled last stage
    with torch.no_grad():
        data = model.data_preprocessor(batches[0], False)
        neck = model.extract_feat(data['inputs'])[-1]
    assert torch.allclose(feats['backbone.layer4'][:4], neck, atol=1e-5)
    with pytest.raises(ValueError, match='--pooling auto'):
        collect_representations(model, batches, taps, 'cls', progress=False)


def test_pool_masks_padding():
    x = torch.arange(12.).view(1, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0]])
    assert pool(x, 'cls').tolist() == [[0., 1., 2.]]
    assert pool(x, 'mean', mask).tolist() == [[1.5, 2.5, 3.5]]
    assert pool(x, 'mean').tolist() == [[4.5, 5.5, 6.5]]


@pytest.fixture(scope='module')
def vilbert(tmp_path_factory):
    from mmengine.registry import DefaultScope

    from mmext.testing.bert import make_bert_folder
    from mmext.testing.vilbert import tiny_vilbert
    bert = make_bert_folder(tmp_path_factory.mktemp('bert') / 'bert')
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmext'):
        return tiny_vilbert(bert).eval()


def test_vilbert_streams_and_coattention_outputs(vilbert):
    from mmext.testing.vilbert import fixed_batch
    inputs = fixed_batch()
    inputs['itm_labels'] = torch.ones(4, dtype=torch.long)  # all matched
    batches = [dict(inputs=inputs)]
    taps_a, taps_b = model_taps(vilbert)
    assert [t.name for t in taps_a] == TWO_STREAM_SIDES[0]
    # the co-attention block as a module tap (tuple output, element 0;
    # hooks see no padding mask) and as a per-layer output (masked)
    taps_a = taps_a + parse_taps(['coattn.0:0'], vilbert)
    fa, fb, ids = collect_sides(
        vilbert, batches, taps_a, taps_b, 'mean', progress=False)
    assert list(fa) == ['text.0', 'text.1', 'coattn.0.text', 'coattn.0:0']
    assert list(fb) == ['vision.0', 'vision.1', 'coattn.0.vision']
    assert ids == [0, 1, 2, 3]
    with torch.no_grad():
        data = vilbert.data_preprocessor(dict(inputs=inputs), False)
        out = vilbert.extract_feat(data['inputs'], return_layers=True)
    co_text = out['coattn_layers'][0]['text']
    assert torch.allclose(fa['coattn.0:0'], co_text.mean(1), atol=1e-6)
    assert torch.allclose(
        fa['coattn.0.text'][0], co_text[0].mean(0),
        atol=1e-6)  # sample 0 has no padding
    # text padding (sample 1's last two tokens) is left out of the mean
    m = inputs['attention_mask'][1].bool()
    assert torch.allclose(
        fa['text.1'][1], out['text_layers'][1][1][m].mean(0), atol=1e-6)
    assert not torch.allclose(
        fa['text.1'][1], out['text_layers'][1][1].mean(0), atol=1e-4)
    assert torch.allclose(
        fb['vision.0'], out['vision_layers'][0].mean(1), atol=1e-6)
    # captions swapped for ITM (label 0) are left out
    swapped = dict(inputs, itm_labels=torch.tensor([1, 0, 1, 0]))
    fa2, _, ids2 = collect_sides(
        vilbert, [dict(inputs=swapped)],
        taps_a,
        taps_b,
        'mean',
        progress=False)
    assert ids2 == [0, 2]
    assert torch.allclose(fa2['text.0'], fa['text.0'][[0, 2]])
    with pytest.raises(ValueError, match="'audio.\\*' matches no"):
        collect_representations(
            vilbert, batches, parse_taps(['audio.*'], vilbert), progress=False)


def test_alignment_hook_in_training(tmp_path):
    from mmengine.runner import Runner

    from mmext.testing import make_image_folder
    make_image_folder(tmp_path / 'data' / 'tiny', per_class=4, size=32)
    cfg = Config.fromfile(ROOT / 'configs/tiny' /
                          'resnet18_1xb8-scratch_tiny-64px.py')
    for key in ('train_dataloader', 'val_dataloader'):
        cfg[key].dataset.data_root = str(tmp_path / 'data' / 'tiny')
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.max_epochs = 1
    cfg.work_dir = str(tmp_path / 'work')
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=5)
    cfg.custom_hooks = [
        dict(
            type='AlignmentHook',
            layers=['backbone.layer3', 'backbone.layer4'],
            k=3,  # the default pooling ('auto') works on ResNet maps
            metrics=['linear_cka', 'mutual_knn'],
            pairs='all')
    ]
    runner = Runner.from_cfg(cfg)
    runner.train()
    record = json.loads((tmp_path / 'work/alignment/epoch_1.json').read_text())
    assert record['num_samples'] == 12
    pairs = {(r['layer_a'], r['layer_b']): r for r in record['records']}
    assert len(pairs) == 4
    same = pairs['backbone.layer3', 'backbone.layer3']
    assert same['linear_cka'] == pytest.approx(1, abs=1e-5)
    assert same['mutual_knn'] == 1.0
    scalars = runner.message_hub.log_scalars
    assert 'val/alignment/linear_cka/mean' in scalars


def test_vit_layers_cls_token():
    """mmpretrain ViT blocks (what TRAR-ViT / ViT comparisons tap): the CLS
    token of the last block is the backbone's cls_token output."""
    from mmengine.model import BaseModel

    from mmext.testing.vilbert import TINY_VIT

    class Wrapper(BaseModel):

        def __init__(self):
            super().__init__()
            self.backbone = MODELS.build(dict(TINY_VIT, out_type='cls_token'))

        def forward(self, inputs, data_samples=None, mode='tensor'):
            return self.backbone(inputs)

        def test_step(self, data):
            return self.backbone(data['inputs'])

    torch.manual_seed(0)
    model = Wrapper().eval()
    x = torch.randn(5, 3, 32, 32)
    taps = default_taps(model)
    assert [t.name for t in taps] == ['backbone.layers.0', 'backbone.layers.1']
    feats, ids = collect_representations(
        model, [dict(inputs=x)], taps, 'cls', progress=False)
    assert ids == [0, 1, 2, 3, 4]
    with torch.no_grad():
        cls = model.backbone(x)[-1]
    assert torch.allclose(feats['backbone.layers.1'], cls, atol=1e-6)


def _classifier(backbone, in_channels):
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=backbone,
            neck=dict(type='GlobalAveragePooling')
            if backbone['type'] in ('ResNet', 'SEResNet') else None,
            head=dict(
                type='LinearClsHead', num_classes=3, in_channels=in_channels)))


def _families(bert_dir):
    from mmext.testing.tiny_models import TINY_TRAR, build_tiny
    from mmext.testing.vilbert import TINY_VIT, fixed_batch
    imgs = _image_batches(1, b=3)
    big = [
        dict(
            inputs=list(
                torch.randint(0, 255, (3, 3, 224, 224), dtype=torch.uint8)),
            data_samples=imgs[0]['data_samples'])
    ]
    vit_nocls = dict(TINY_VIT, with_cls_token=False, out_type='featmap')
    tinyvit = dict(
        type='TinyViT',
        arch='5m',
        img_size=(224, 224),
        window_size=[7, 7, 14, 7],
        out_indices=(3, ),
        gap_before_final_norm=True)
    views = torch.rand(3, 2, 3, 32, 32)  # R2Gen: (B, views, 3, H, W)
    pairs = fixed_batch()
    pairs.pop('itm_labels', None)  # all matched (swaps are collate's job)
    return {
        # family: (model, batches, expected pooling of every default tap)
        'ResNet': (_resnet_classifier, imgs, 'spatial mean'),
        'SE-ResNet':
        (lambda: _classifier(dict(type='SEResNet', depth=50), 2048), imgs,
         'spatial mean'),
        'ViT': (lambda: _classifier(TINY_VIT, 32), imgs, 'cls'),
        'ViT without CLS': (lambda: _classifier(vit_nocls, 32), imgs, 'mean'),
        'TRAR-ViT': (lambda: _classifier(TINY_TRAR, 32), imgs, 'cls'),
        'TinyViT': (lambda: _classifier(tinyvit, 320), big, 'mean'),
        'R2Gen extractor': (lambda: build_tiny('R2GenReportGenerator'),
                            [dict(inputs=views)], 'spatial mean'),
        'ViLBERT':
        (lambda: build_tiny('ViLBERT', bert_dir), [dict(inputs=pairs)], 'cls'),
        'ViLBERT classifier':
        (lambda: build_tiny('ViLBERTClassifier', bert_dir),
         [dict(inputs=pairs)], 'cls'),
    }


FAMILIES = [
    'ResNet', 'SE-ResNet', 'ViT', 'ViT without CLS', 'TRAR-ViT', 'TinyViT',
    'R2Gen extractor', 'ViLBERT', 'ViLBERT classifier'
]


@pytest.mark.parametrize('family', FAMILIES)
def test_defaults_work_on_every_family(family, tmp_path):
    """Default taps and --pooling auto on each supported model family: one
    vector per sample per layer, pooled by the documented rule."""
    from mmext.testing.bert import make_bert_folder
    bert = make_bert_folder(tmp_path / 'bert')
    families = _families(bert)
    build, batches, kind = families[family]
    model = build().eval()
    taps_a, taps_b = model_taps(model)
    details = {}
    fa, fb, ids = collect_sides(
        model,
        batches,
        taps_a,
        taps_b,
        'auto',
        progress=False,
        details=details)
    n = 4 if family.startswith('ViLBERT') else 3
    assert len(ids) == n and len(fa) >= 2
    assert all(v.ndim == 2 and v.shape[0] == n for v in fa.values())
    assert set(details['pooling'].values()) == {kind}, details['pooling']
    assert len(details['digests']) == n


def test_auto_pooling_rule_by_hand():
    x = torch.arange(24.).view(1, 4, 6)
    assert torch.equal(pool(x, 'auto', cls=True), x[:, 0])
    assert torch.equal(pool(x, 'auto', cls=False), x.mean(1))
    fmap = torch.arange(16.).view(1, 1, 4, 4)
    assert pool(fmap, 'auto').item() == 7.5  # mean over H x W
    assert pool(fmap, 'mean').item() == 7.5
