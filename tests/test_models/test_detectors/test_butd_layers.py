# Copyright (c) mmext contributors. All rights reserved.
"""BUTD layers against caffe's arithmetic: BN folding, ROI pooling, ArgMax,
the blocked RPN softmax, pooling / stride / dilation placement, input
preprocessing (REFERENCES.md § BUTD for the sources)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops.misc import FrozenBatchNorm2d

from mmext.models.detectors import BUTDFasterRCNN
from mmext.models.detectors.butd import caffe_im_scale, caffe_preprocess
from mmext.models.detectors.butd.caffe_convert import _fold_bn
from mmext.models.detectors.butd.roi_head import BUTDRoIHead, caffe_argmax

try:
    import cv2
except ImportError:  # the torch resize backend is tested on its own
    cv2 = None


def caffe_bn_scale(x, mean, var, sf, gamma, beta, eps=1e-5):
    """batch_norm_layer.cpp (use_global_stats) then scale_layer.cpp."""
    f = 0.0 if sf == 0 else 1.0 / sf
    m, v = mean * f, var * f
    shape = (1, -1, 1, 1)
    y = (x - m.reshape(shape)) / np.sqrt(v.reshape(shape) + eps)
    return y * gamma.reshape(shape) + beta.reshape(shape)


@pytest.mark.parametrize('sf', [7.25, 1.0, 0.0])
def test_bn_folding_equals_caffe(sf):
    rng = np.random.RandomState(0)
    c = 6
    mean = rng.randn(c).astype(np.float32) * 3
    var = rng.uniform(0.5, 4, c).astype(np.float32)
    gamma = rng.randn(c).astype(np.float32)
    beta = rng.randn(c).astype(np.float32)
    x = rng.randn(2, c, 5, 4).astype(np.float32)
    bn = FrozenBatchNorm2d(c, eps=1e-5)
    folded = _fold_bn(
        [torch.from_numpy(mean),
         torch.from_numpy(var),
         torch.tensor([sf])],
        [torch.from_numpy(gamma),
         torch.from_numpy(beta)])
    bn.load_state_dict(folded)
    got = bn(torch.from_numpy(x)).numpy()
    want = caffe_bn_scale(x.astype(np.float64), mean, var, sf, gamma, beta)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    if sf not in (1.0, ):  # converters that drop sf get another answer
        wrong = caffe_bn_scale(x, mean, var, 1.0, gamma, beta)
        assert not np.allclose(got, wrong, atol=1e-3)


def caffe_roi_pool(feat, roi, pooled, scale):
    """roi_pooling_layer.cpp Forward_cpu for one ROI (float32 arithmetic;
    C round() = half away from zero)."""
    _, height, width = feat.shape
    cround = lambda v: int(math.floor(v + 0.5)) if v >= 0 else \
        -int(math.floor(-v + 0.5))  # noqa: E731
    f32 = np.float32
    sw, sh, ew, eh = (cround(f32(v) * f32(scale)) for v in roi)
    rh, rw = max(eh - sh + 1, 1), max(ew - sw + 1, 1)
    bh, bw = f32(rh) / f32(pooled), f32(rw) / f32(pooled)
    out = np.zeros((feat.shape[0], pooled, pooled), np.float32)
    for ph in range(pooled):
        for pw in range(pooled):
            hs = min(max(int(math.floor(f32(ph) * bh)) + sh, 0), height)
            he = min(max(int(math.ceil(f32(ph + 1) * bh)) + sh, 0), height)
            ws = min(max(int(math.floor(f32(pw) * bw)) + sw, 0), width)
            we = min(max(int(math.ceil(f32(pw + 1) * bw)) + sw, 0), width)
            if he <= hs or we <= ws:
                continue  # empty bin: 0
            out[:, ph, pw] = feat[:, hs:he, ws:we].max(axis=(1, 2))
    return out


def test_roi_pool_hand_cases():
    head = BUTDRoIHead(
        8,
        2,
        1,
        num_classes=3,
        num_attributes=2,
        attr_embed_dims=2,
        attr_hidden=4,
        roi_size=2)
    grid = torch.arange(16.).view(1, 1, 4, 4)
    pool = lambda f, r: torch.ops.torchvision.roi_pool(  # noqa: E731
        f, torch.tensor([[0.] + r]), head.spatial_scale, 2, 2)[0]
    # end round(63/16 = 3.94) = 4 -> width 5, bins [0,3) and [2,5)->[2,4)
    assert pool(grid, [0, 0, 63, 63])[0].tolist() == [[[10., 11.], [14., 15.]]]
    # x 8 / 16 = 0.5 and 40 / 16 = 2.5 round half away from zero to
    # columns 1..3 (bins [1,3), [2,4)); half-to-even would give [1., 2.]
    assert pool(grid, [8, 0, 40, 15])[0, 0, 0].tolist() == [2., 3.]
    # ROI beyond the map: empty bins give 0, not -FLT_MAX
    assert pool(grid, [100, 100, 140, 140])[0].abs().sum() == 0
    neg = -1 - grid  # all negative: maxima stay negative (init -FLT_MAX)
    assert pool(neg, [0, 0, 31, 31])[0].max() < 0


def test_roi_pool_equals_caffe_kernel_loop():
    rng = np.random.RandomState(1)
    feat = rng.randn(3, 9, 11).astype(np.float32)
    rois = [[0, 0, 170, 140], [17.3, 8.5, 60.2, 99.9], [40, 40, 40, 40],
            [100.4, 3, 180, 150], [8, 8, 24, 24], [-5, -9, 30, 20]]
    got = torch.ops.torchvision.roi_pool(
        torch.from_numpy(feat)[None], torch.tensor([[0.] + r for r in rois]),
        1 / 16, 14, 14)[0]
    for roi, out in zip(rois, got):
        np.testing.assert_array_equal(out.numpy(),
                                      caffe_roi_pool(feat, roi, 14, 1 / 16))


def test_caffe_argmax_ties_pick_last():
    x = torch.tensor([[1., 3., 3., 0.], [5., 1., 2., 5.]])
    assert caffe_argmax(x, dim=1).tolist() == [2, 3]
    assert torch.argmax(x, dim=1).tolist() == [1, 0]


def test_rpn_logit_difference_equals_blocked_softmax():
    """caffe: conv 24 ch -> Reshape (0, 2, -1, 0) -> Softmax(axis 1) ->
    Reshape (0, 24, -1, 0); fg = channels 12..23."""
    torch.manual_seed(0)
    a, h, w = 12, 3, 5
    x = torch.randn(1, 16, h, w)
    weight, bias = torch.randn(2 * a, 16, 1, 1), torch.randn(2 * a)
    raw = F.conv2d(x, weight, bias)
    prob = torch.softmax(raw.view(1, 2, a * h, w), dim=1).view(1, 2 * a, h, w)
    fg_caffe = prob[:, a:]
    fg = torch.sigmoid(
        F.conv2d(x, weight[a:] - weight[:a], bias[a:] - bias[:a]))
    torch.testing.assert_close(fg, fg_caffe, rtol=1e-5, atol=1e-6)
    interleaved = torch.sigmoid(
        F.conv2d(x, weight[1::2] - weight[0::2], bias[1::2] - bias[0::2]))
    assert not torch.allclose(interleaved, fg_caffe, atol=1e-3)


def test_backbone_pool_ceil_stride_and_res5_dilation():
    model = BUTDFasterRCNN((1, 2, 1, 1),
                           base_channels=4,
                           rpn_channels=8,
                           num_classes=5,
                           num_attributes=3,
                           attr_embed_dims=4,
                           attr_hidden=6)
    seen = {}

    def record(name, shape):
        seen[name] = tuple(shape[-2:])  # returns None: output unchanged

    model.backbone.layer1.register_forward_hook(
        lambda m, i, o: record('pool', i[0].shape))
    model.roi_head.layer4.register_forward_hook(
        lambda m, i, o: record('res5', o.shape))
    feats = model.backbone(torch.rand(1, 3, 40, 40))
    assert seen['pool'] == (10, 10)  # conv1 20x20; floor mode would give 9
    assert tuple(feats.shape[-2:]) == (3, 3)
    b = model.backbone.layer2[0]
    assert b.conv1.stride == (2, 2) and b.conv2.stride == (1, 1)
    assert b.downsample[0].stride == (2, 2)
    model.roi_head.pool_features(feats, torch.tensor([[0., 0, 0, 40, 40]]))
    assert seen['res5'] == (14, 14)
    for blk in model.roi_head.layer4:
        assert blk.conv2.dilation == (2, 2) and blk.conv2.padding == (2, 2)
        assert blk.conv1.stride == (1, 1)


@pytest.mark.parametrize(
    'hw,scale',
    [
        ((480, 640), 1.25),
        ((300, 1000), 1.0),  # 600/300 = 2 would make the long side 2000
        ((400, 667), 1.5),  # 1000.5 rounds (half to even) to 1000: not > 1000
        ((600, 1667), 1000 / 1667),
    ])
def test_im_scale_rule(hw, scale):
    assert caffe_im_scale(*hw) == pytest.approx(scale, rel=1e-12)


@pytest.mark.skipif(cv2 is None, reason='OpenCV not installed')
@pytest.mark.parametrize('hw', [(37, 53), (700, 1300)])
def test_preprocess_means_before_resize(hw):
    rng = np.random.RandomState(0)
    img = rng.randint(0, 256, hw + (3, )).astype(np.uint8)
    x, scale = caffe_preprocess(img, backend='cv2')
    ref = img.astype(np.float32) - np.array([102.9801, 115.9465, 122.7717],
                                            np.float32)
    ref = cv2.resize(
        ref, None, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(x[0].permute(1, 2, 0).numpy(), ref)
    xt, _ = caffe_preprocess(img, backend='torch')
    assert xt.shape == x.shape
    # same formula; float32 interpolation weights round differently at
    # source coordinates > 1000 (measured max 0.026 of the 0-255 range)
    assert (xt - x).abs().max() < 0.05


def test_preprocess_rejects_bad_shape():
    with pytest.raises(ValueError, match=r'expected an \(H, W, 3\) BGR'):
        caffe_preprocess(np.zeros((10, 10, 4), np.uint8))
