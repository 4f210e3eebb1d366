# Copyright (c) mmext contributors. All rights reserved.
"""Which regions of an image BUTD keeps: ``tools/generate_tsv.py``'s rule.

For every object class 1..C-1: NMS (0.3) on (ROIs, class probability) and
the best score a kept box reaches; keep boxes whose best score is ≥ 0.2;
if that is fewer than ``min_boxes`` take the top ``min_boxes`` by score, if
more than ``max_boxes`` the top ``max_boxes``; in between they stay in ROI
order. The reference runs 1600 Python-level NMS calls per image; here the
IoU matrix of the (≤ 300) ROIs is computed once and the greedy suppression
runs for all classes at once on bitsets (same keep sets, see
``box_ops.caffe_nms``).
Ties in the best score are ordered stably (the reference's ``argsort``
leaves them unspecified).
"""
import torch

from .box_ops import iou_suppression_matrix

__all__ = ['per_class_nms_max_scores', 'select_regions']


def per_class_nms_max_scores(boxes, cls_prob, nms_thresh=0.3):
    """Best score each box keeps after per-class NMS (background excluded).

    Args:
        boxes (Tensor): (R, 4) ROIs.
        cls_prob (Tensor): (R, C) class probabilities, column 0 background.
        nms_thresh (float): Defaults to 0.3.

    Returns:
        Tensor: (R,) float32 ``max_conf`` (0 for a box suppressed in every
        class).
    """
    num_rois = boxes.shape[0]
    if num_rois == 0:
        return cls_prob.new_zeros(0)
    packed = _pack_rows(iou_suppression_matrix(boxes, nms_thresh))
    scores = cls_prob[:, 1:].t().float()  # (C', R)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    rows = torch.arange(scores.shape[0], device=scores.device)
    # suppressed boxes of every class as bitsets: (C', R / 32) words, so a
    # greedy step touches 32x fewer elements than a (C', R) bool matrix
    # (small enough to stay on one thread: no OpenMP barrier per step,
    # which costs seconds per image on a busy machine)
    suppressed = rows.new_zeros(scores.shape[0], packed.shape[1])
    kept = torch.zeros_like(scores, dtype=torch.bool)
    word, bit = order >> 5, order & 31
    for i in range(num_rois):  # greedy step i for every class at once
        cur = order[:, i]
        ok = (suppressed[rows, word[:, i]] >> bit[:, i]) & 1 == 0
        kept[rows, cur] = ok
        suppressed |= packed[cur] * ok[:, None]
    return torch.where(kept, scores, torch.zeros_like(scores)).amax(dim=0)


def _pack_rows(matrix):
    """(N, N) bool → (N, ceil(N / 32)) int64, bit j of word w = column
    32·w + j."""
    n = matrix.shape[0]
    words = (n + 31) // 32
    padded = matrix.new_zeros(n, words * 32)
    padded[:, :n] = matrix
    weights = torch.ones(32, dtype=torch.long, device=matrix.device) << \
        torch.arange(32, device=matrix.device)
    return (padded.view(n, words, 32).long() * weights).sum(-1)


def select_regions(boxes,
                   cls_prob,
                   nms_thresh=0.3,
                   conf_thresh=0.2,
                   min_boxes=10,
                   max_boxes=100):
    """Indices of the regions generate_tsv writes, and their best scores.

    Args:
        boxes (Tensor): (R, 4) ROIs (un-regressed proposals).
        cls_prob (Tensor): (R, C) class probabilities.
        nms_thresh (float): Per-class NMS threshold. Defaults to 0.3.
        conf_thresh (float): Minimum best score. Defaults to 0.2.
        min_boxes (int): Defaults to 10.
        max_boxes (int): Defaults to 100 (36 / 36 for the fixed-36 set).

    Returns:
        tuple[Tensor, Tensor]: int64 indices into the ROIs and the (R,)
        ``max_conf``.
    """
    if min_boxes > max_boxes:
        raise ValueError(f'select_regions: min_boxes={min_boxes} exceeds '
                         f'max_boxes={max_boxes}')
    max_conf = per_class_nms_max_scores(boxes, cls_prob, nms_thresh)
    # float32 scores against a double threshold, as numpy does it
    keep = torch.nonzero(max_conf.double() >= conf_thresh).squeeze(1)
    if len(keep) < min_boxes or len(keep) > max_boxes:
        k = min_boxes if len(keep) < min_boxes else max_boxes
        keep = torch.sort(max_conf, descending=True, stable=True).indices[:k]
    return keep, max_conf
