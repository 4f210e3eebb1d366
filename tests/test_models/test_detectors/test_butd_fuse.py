# Copyright (c) mmext contributors. All rights reserved.
"""fuse_for_inference: BatchNorm + Scale folded into the convs of the BUTD
detector gives the un-fused model's regions (float rounding only)."""
import numpy as np
import pytest
import torch
from torchvision.ops.misc import FrozenBatchNorm2d

from mmext.models.detectors import BUTDFasterRCNN
from mmext.models.detectors.butd.fuse import (fold_frozen_bn,
                                              fuse_for_inference, is_fused)
from mmext.testing.tiny_models import TINY_BUTD


def _random_bn_stats(model, seed=0):
    """Non-trivial statistics, so a wrong fold shows (random init has
    mean 0 / var 1 / weight 1 / bias 0: an identity BN)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, FrozenBatchNorm2d):
            n = m.weight.numel()
            m.weight.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
            m.running_mean.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
    return model


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def _assert_same_regions(fused_out, ref_out):
    # the same proposals in the same order; coordinates differ by float
    # rounding of the RPN deltas only (bit identity is not possible once
    # the conv arithmetic changes, nor across thread counts)
    assert fused_out['rois'].shape == ref_out['rois'].shape
    assert len(ref_out['rois']) > 0
    torch.testing.assert_close(
        fused_out['rois'], ref_out['rois'], rtol=0, atol=1e-2)
    torch.testing.assert_close(
        fused_out['rpn_scores'], ref_out['rpn_scores'], rtol=1e-5, atol=1e-6)
    for key in ('features', 'cls_prob', 'attr_prob'):
        assert _rel(fused_out[key], ref_out[key]) < 1e-5, key
    assert _rel(fused_out['cls_boxes'], ref_out['cls_boxes']) < 1e-4


@pytest.mark.parametrize('channels_last', [False, True])
def test_tiny_model_parity(channels_last):
    torch.manual_seed(0)
    cfg = {k: v for k, v in TINY_BUTD.items() if k != 'type'}
    model = _random_bn_stats(BUTDFasterRCNN(**cfg)).eval()
    img = np.random.RandomState(0).randint(0, 256, (64, 96, 3), np.uint8)
    fused = fuse_for_inference(model, channels_last=channels_last)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    assert is_fused(fused) and not is_fused(model)
    # conv1 + bn1 of the stem, 3 + 1 per projecting block, 3 per other
    assert fused._fused_layers == 1 + 4 * 4
    _assert_same_regions(fused.predict_image(img), model.predict_image(img))


def test_full_architecture_parity_small_image():
    """ResNet-101 C4 + res5 head at full width: 128 px, 20 ROIs."""
    torch.manual_seed(0)
    model = BUTDFasterRCNN(
        test_cfg=dict(target_size=128, max_size=200, post_nms_top_n=20))
    model = _random_bn_stats(model.eval())
    img = np.random.RandomState(1).randint(0, 256, (128, 160, 3), np.uint8)
    ref = model.predict_image(img)
    # the extraction default: fused in place, channels-last
    fused = fuse_for_inference(model, inplace=True, channels_last=True)
    assert fused is model
    assert fused._fused_layers == 1 + (3 + 4 + 23 + 3) * 3 + 4
    out = fused.predict_image(img)
    assert len(out['rois']) == 20
    _assert_same_regions(out, ref)


def test_fold_matches_conv_then_bn_with_conv_bias():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, 3, 2, 2, dilation=2, bias=True)
    bn = _random_bn_stats(torch.nn.Sequential(FrozenBatchNorm2d(5)))[0]
    x = torch.randn(2, 3, 9, 11)
    torch.testing.assert_close(
        fold_frozen_bn(conv, bn)(x), bn(conv(x)), rtol=1e-5, atol=1e-6)


def test_fused_model_refuses_training_and_fuses_once():
    torch.manual_seed(0)
    cfg = {k: v for k, v in TINY_BUTD.items() if k != 'type'}
    model = BUTDFasterRCNN(**cfg).eval()
    fused = fuse_for_inference(model)
    assert fuse_for_inference(fused) is fused
    fused.eval()  # allowed: stays an inference model
    with pytest.raises(RuntimeError, match='un-fused model'):
        fused.train()
    model.train()  # the original keeps its BN layers and trains
    assert model.training


def test_bn_without_conv_is_an_error():
    net = torch.nn.Sequential(FrozenBatchNorm2d(3), torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match='do not follow a conv'):
        fuse_for_inference(net)
