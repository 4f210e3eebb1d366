# Copyright (c) mmext contributors. All rights reserved.
"""BUTD box arithmetic against values of the reference's own Python layers.

``tests/data/butd_golden.npz`` holds inputs and outputs computed once from
peteanderson80/bottom-up-attention@514e561 ``lib/rpn/generate_anchors.py``,
``lib/rpn/proposal_layer.py`` (TEST: 6000 / 0.7 / 300, min size 16),
``lib/fast_rcnn/bbox_transform.py``, ``lib/nms/cpu_nms.pyx`` and the region
selection of ``tools/generate_tsv.py`` on fixed random inputs (only the
values are committed, not that code).
"""

import numpy as np
import pytest
import torch
from torchvision.ops import nms as tv_nms

from mmext.models.detectors.butd import (caffe_nms, clip_boxes, decode_boxes,
                                         generate_anchors, propose)
from mmext.models.detectors.butd.select_regions import select_regions
from tests.conftest import TEST_DATA

GOLDEN = TEST_DATA / 'butd_golden.npz'

# PA generate_anchors(scales=(4, 8, 16, 32)), REFERENCES.md § BUTD
ANCHORS = [[-38, -16, 53, 31], [-84, -40, 99, 55], [-176, -88, 191, 103],
           [-360, -184, 375, 199], [-24, -24, 39, 39], [-56, -56, 71, 71],
           [-120, -120, 135, 135], [-248, -248, 263, 263], [-14, -36, 29, 51],
           [-36, -80, 51, 95], [-80, -168, 95, 183], [-168, -344, 183, 359]]


@pytest.fixture(scope='module')
def golden():
    with np.load(GOLDEN, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def t(x):
    return torch.from_numpy(np.ascontiguousarray(x))


def test_anchor_table(golden):
    assert generate_anchors().tolist() == ANCHORS
    np.testing.assert_array_equal(generate_anchors(), golden['anchors'])
    # py-faster-rcnn's default scales (8, 16, 32): its documented 9 anchors
    assert generate_anchors(scales=(8, 16,
                                    32))[0].tolist() == [-84, -40, 99, 55]


@pytest.mark.parametrize('tag,kwargs', [
    ('default', {}),
    ('pre150_post40', dict(pre_nms_top_n=150, post_nms_top_n=40)),
])
def test_proposals_match_reference(golden, tag, kwargs):
    info = golden['prop_im_info']
    boxes, scores = propose(
        t(golden['prop_fg']), t(golden['prop_deltas']), t(generate_anchors()),
        (int(info[0]), int(info[1])), float(info[2]), **kwargs)
    want = golden[f'prop_boxes_{tag}']
    assert boxes.shape == want.shape
    np.testing.assert_allclose(boxes.numpy(), want, rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(scores.numpy(), golden[f'prop_scores_{tag}'])


def test_decoding_does_not_clamp(golden):
    """Row 0 has dw = 5.5 > log(1000/16), row 1 dh = -6: detectron2's clamp
    at log(1000/16) would move box 0 away from the reference."""
    boxes, deltas = t(golden['dec_boxes']), t(golden['dec_deltas'])
    clamped = decode_boxes(boxes, deltas.clamp(max=float(np.log(1000 / 16))))
    assert not np.allclose(clamped[0].numpy(), golden['dec_out'][0])
    np.testing.assert_allclose(
        decode_boxes(boxes, deltas)[:2].numpy(),
        golden['dec_out'][:2],
        rtol=1e-6,
        atol=1e-4)


def test_box_decoding(golden):
    out = decode_boxes(t(golden['dec_boxes']), t(golden['dec_deltas']))
    np.testing.assert_allclose(
        out.numpy(), golden['dec_out'], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(
        clip_boxes(out, 240, 320).numpy(),
        golden['dec_out_clipped'],
        rtol=1e-6,
        atol=1e-4)


@pytest.mark.parametrize('thresh', [0.3, 0.5, 0.7])
def test_nms_keep_lists(golden, thresh):
    dets = t(golden['nms_dets'])
    keep = caffe_nms(dets[:, :4], dets[:, 4], thresh)
    np.testing.assert_array_equal(keep.numpy(), golden[f'nms_keep_{thresh}'])


def test_nms_threshold_ties(golden):
    # IoU exactly 0.5 (area 50 inside area 100): cpu_nms suppresses (>=),
    # torchvision's nms (>, no +1) keeps it
    tie = t(golden['nms_tie_dets'])
    keep = caffe_nms(tie[:, :4], tie[:, 4], 0.5).tolist()
    assert keep == golden['nms_tie_keep_0.5'].tolist() == [0]
    tv = tv_nms(tie[:2, :4] + torch.tensor([0., 0., 1., 1.]), tie[:2, 4], 0.5)
    assert tv.tolist() == [0, 1]
    # IoU 70/100 is 0.69999999 in float32: not >= 0.7 (a double) in cpu_nms
    tie2 = t(golden['nms_tie2_dets'])
    assert caffe_nms(tie2[:, :4], tie2[:, 4], 0.7).tolist() == \
        golden['nms_tie2_keep_0.7'].tolist() == [0, 1]


def test_nms_max_keep(golden):
    dets = t(golden['nms_dets'])
    keep = caffe_nms(dets[:, :4], dets[:, 4], 0.5, max_keep=7)
    np.testing.assert_array_equal(keep.numpy(), golden['nms_keep_0.5'][:7])
    assert len(caffe_nms(torch.zeros(0, 4), torch.zeros(0), 0.5)) == 0


@pytest.mark.parametrize(
    'tag,kwargs',
    [
        ('default', {}),  # 59 boxes pass: between 10 and 100, in ROI order
        ('thr05_min40', dict(conf_thresh=0.5, min_boxes=40)),  # top 40
        ('max5', dict(min_boxes=5, max_boxes=5)),  # top 5 by score
        ('thr05', dict(conf_thresh=0.5, min_boxes=3)),
    ])
def test_region_selection_matches_generate_tsv(golden, tag, kwargs):
    keep, max_conf = select_regions(
        t(golden['sel_boxes']), t(golden['sel_prob']), **kwargs)
    np.testing.assert_array_equal(keep.numpy(), golden[f'sel_keep_{tag}'])
    np.testing.assert_allclose(
        max_conf.numpy(), golden['sel_max_conf'], rtol=0, atol=0)


def test_region_selection_refuses_min_above_max():
    with pytest.raises(ValueError, match='min_boxes=20 exceeds'):
        select_regions(
            torch.zeros(3, 4), torch.rand(3, 5), min_boxes=20, max_boxes=10)
