# Copyright (c) mmext contributors. All rights reserved.
"""BUTDFasterRCNN end to end on a narrow model: output contract, the
attribute head's class embedding, res5 chunking, configs and registry."""

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmext.models.detectors import BUTDFasterRCNN
from mmext.models.detectors.butd import clip_boxes, decode_boxes
from mmext.models.detectors.butd.caffe_convert import DEFAULT_ARCH
from mmext.registry import MODELS
from mmext.utils import register_all_modules
from tests.conftest import ROOT

ARCH = dict(
    stage_blocks=(1, 1, 1, 1),
    base_channels=4,
    rpn_channels=8,
    num_classes=6,
    num_attributes=4,
    attr_embed_dims=3,
    attr_hidden=5)


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    m = BUTDFasterRCNN(
        **ARCH, test_cfg=dict(target_size=64, max_size=100,
                              post_nms_top_n=30)).eval()
    for mod in m.modules():
        if isinstance(mod, torch.nn.Linear):
            torch.nn.init.normal_(mod.weight, std=0.5)
    return m


def test_predict_image_contract(model):
    img = np.random.RandomState(0).randint(0, 256, (50, 75, 3), np.uint8)
    out = model.predict_image(img)
    r = len(out['rois'])
    assert 0 < r <= 30 and out['im_scale'] == pytest.approx(64 / 50)
    assert out['features'].shape == (r, 128)
    assert out['cls_prob'].shape == (r, 6) and out['attr_prob'].shape == (r, 4)
    torch.testing.assert_close(out['cls_prob'].sum(1), torch.ones(r))
    rois = out['rois']
    # clipped to the 64 x 96 network input, then divided by the scale
    assert (rois[:, [0, 2]] <= 95 / 1.28 + 1e-4).all()
    assert (rois[:, [1, 3]] <= 63 / 1.28 + 1e-4).all() and (rois >= 0).all()
    # class boxes: the class deltas applied to the un-regressed ROIs in
    # original-image pixels, clipped to the original image
    feats = model.backbone(torch.zeros(1, 3, 64, 96))  # any features
    props = rois[:4] * out['im_scale']
    res = model.forward_roi(feats, props, out['im_scale'], (50, 75))
    pooled = model.roi_head.pool_features(
        feats, torch.cat([torch.zeros(4, 1), props], 1))
    deltas = model.roi_head.bbox_pred(pooled)
    want = clip_boxes(decode_boxes(props / out['im_scale'], deltas), 50, 75)
    torch.testing.assert_close(res['cls_boxes'], want.view(4, 6, 4))
    assert out['rpn_scores'].shape == (r, )
    assert (out['rpn_scores'][:-1] >= out['rpn_scores'][1:]).all()


def test_attribute_head_embeds_argmax_class_including_background(model):
    head = model.roi_head
    pooled = torch.rand(3, 128)
    with torch.no_grad():
        saved = head.cls_score.bias.clone()
        head.cls_score.bias[0] = 1e4  # background is everyone's arg-max
        _, attr_bg, _ = head.predict(pooled)
        head.cls_embedding.weight[2] += 10  # unused row: no change
        _, attr_same, _ = head.predict(pooled)
        head.cls_embedding.weight[0] += 10  # the background row is used
        _, attr_changed, _ = head.predict(pooled)
        head.cls_embedding.weight[0] -= 10
        head.cls_embedding.weight[2] -= 10
        head.cls_score.bias.copy_(saved)
    torch.testing.assert_close(attr_bg, attr_same)
    assert not torch.allclose(attr_bg, attr_changed)


def test_res5_chunks_equal_one_batch(model):
    feats = torch.rand(1, 64, 6, 8)
    rois = torch.tensor([[0., 0, 0, 100, 80], [0, 10, 5, 60, 90],
                         [0, 30, 30, 127, 95]])
    whole = model.roi_head.pool_features(feats, rois)
    chunked = model.roi_head.pool_features(feats, rois, chunk_size=2)
    torch.testing.assert_close(whole, chunked, rtol=1e-5, atol=1e-6)


def test_refuses_training_and_unknown_test_cfg(model):
    with pytest.raises(NotImplementedError, match='inference-only'):
        model([np.zeros((8, 8, 3), np.uint8)], mode='loss')
    with pytest.raises(ValueError, match=r"unknown test_cfg keys \['nms'\]"):
        BUTDFasterRCNN(**ARCH, test_cfg=dict(nms=0.3))


@pytest.mark.parametrize('name', [
    'butd_faster-rcnn_r101-caffe-c4_vg.py',
    'butd_faster-rcnn_r101-caffe-c4_vg-36boxes.py'
])
def test_configs_build_the_released_architecture(name):
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(str(ROOT / 'configs' / 'butd' / name))
    assert cfg.default_scope == 'mmext'
    for key in ('stage_blocks', 'base_channels', 'rpn_channels', 'num_classes',
                'num_attributes'):
        assert tuple(np.atleast_1d(cfg.model[key])) == tuple(
            np.atleast_1d(DEFAULT_ARCH[key]))
    with torch.device('meta'):
        built = MODELS.build(cfg.model)
    assert isinstance(built, BUTDFasterRCNN)
    boxes = (36, 36) if '36boxes' in name else (10, 100)
    assert (cfg.extract_cfg.min_boxes, cfg.extract_cfg.max_boxes) == boxes
    assert cfg.extract_cfg.nms_thresh == 0.3
