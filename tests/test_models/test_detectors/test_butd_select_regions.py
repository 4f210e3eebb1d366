# Copyright (c) mmext contributors. All rights reserved.
"""per_class_nms_max_scores (bitset greedy NMS for all classes at once)
equals one caffe_nms per class, across 32-box word boundaries and ties."""
import pytest
import torch

from mmext.models.detectors.butd.box_ops import caffe_nms
from mmext.models.detectors.butd.select_regions import per_class_nms_max_scores


def _one_nms_per_class(boxes, cls_prob, thresh):
    """generate_tsv's loop: NMS per class, best kept score per box."""
    max_conf = torch.zeros(len(boxes))
    for c in range(1, cls_prob.shape[1]):
        keep = caffe_nms(boxes, cls_prob[:, c], thresh)
        max_conf[keep] = torch.maximum(max_conf[keep], cls_prob[keep, c])
    return max_conf


@pytest.mark.parametrize('num_rois,num_classes,ties', [(1, 4, False),
                                                       (31, 6, True),
                                                       (32, 5, False),
                                                       (33, 7, True),
                                                       (65, 9, True),
                                                       (97, 3, False)])
def test_bitset_nms_equals_per_class_nms(num_rois, num_classes, ties):
    g = torch.Generator().manual_seed(num_rois)
    xy = torch.rand(num_rois, 2, generator=g) * 120
    wh = torch.rand(num_rois, 2, generator=g) * 90 + 5
    boxes = torch.cat([xy, xy + wh], 1)
    prob = torch.softmax(
        torch.randn(num_rois, num_classes, generator=g) * 3, 1)
    if ties:  # equal IoUs and equal scores: the stable order decides
        boxes, prob = boxes.round(), (prob * 8).round() / 8
    want = _one_nms_per_class(boxes, prob, 0.3)
    assert torch.equal(per_class_nms_max_scores(boxes, prob, 0.3), want)
