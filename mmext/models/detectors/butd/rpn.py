# Copyright (c) mmext contributors. All rights reserved.
"""BUTD region proposal network and py-faster-rcnn's test proposal layer.

The caffe RPN predicts 24 channels, 2 (bg, fg) × 12 anchors in a *blocked*
layout (channels 0-11 background, 12-23 foreground) and soft-maxes each
(bg, fg) pair. Since ``softmax([b, f])[1] = sigmoid(f - b)``, one logit per
anchor ``W[12:24] - W[0:12]`` gives the same probability; the converter
stores that difference in ``rpn_cls`` (12 channels).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .box_ops import (caffe_nms, clip_boxes, decode_boxes, generate_anchors,
                      shifted_anchors)

__all__ = ['BUTDRPNHead', 'propose']


def propose(fg_prob,
            deltas,
            anchors,
            im_hw,
            im_scale,
            feat_stride=16,
            pre_nms_top_n=6000,
            post_nms_top_n=300,
            nms_thresh=0.7,
            min_size=16):
    """Test-time proposals of py-faster-rcnn's ``ProposalLayer``.

    decode every anchor → clip to the input image → drop boxes with
    ``w + 1`` or ``h + 1`` below ``min_size · im_scale`` → top
    ``pre_nms_top_n`` by foreground probability → :func:`caffe_nms` →
    first ``post_nms_top_n``.

    Args:
        fg_prob (Tensor): (A, H, W) foreground probabilities.
        deltas (Tensor): (4·A, H, W), channel ``4a + {dx, dy, dw, dh}``.
        anchors (Tensor): (A, 4) anchor table.
        im_hw (tuple[int, int]): Height and width of the network input.
        im_scale (float): Resize factor of the input (scales ``min_size``).
        feat_stride (int): Defaults to 16.
        pre_nms_top_n (int): Defaults to 6000.
        post_nms_top_n (int): Defaults to 300.
        nms_thresh (float): Defaults to 0.7.
        min_size (int): Defaults to 16.

    Returns:
        tuple[Tensor, Tensor]: Proposals (R, 4) in input-image pixels and
        their foreground probabilities (R,).
    """
    num_anchors, height, width = fg_prob.shape
    all_anchors = shifted_anchors(anchors, height, width, feat_stride)
    scores = fg_prob.permute(1, 2, 0).reshape(-1)
    deltas = deltas.permute(1, 2, 0).reshape(-1, 4)
    boxes = clip_boxes(decode_boxes(all_anchors, deltas), *im_hw)
    ws = boxes[:, 2] - boxes[:, 0] + 1
    hs = boxes[:, 3] - boxes[:, 1] + 1
    limit = torch.tensor(min_size * im_scale, dtype=boxes.dtype)
    keep = torch.nonzero((ws >= limit) & (hs >= limit)).squeeze(1)
    boxes, scores = boxes[keep], scores[keep]
    order = torch.sort(scores, descending=True, stable=True).indices
    if pre_nms_top_n > 0:
        order = order[:pre_nms_top_n]
    boxes, scores = boxes[order], scores[order]
    keep = caffe_nms(boxes, scores, nms_thresh,
                     post_nms_top_n if post_nms_top_n > 0 else None)
    return boxes[keep], scores[keep]


class BUTDRPNHead(nn.Module):
    """3×3 conv + ReLU, one foreground logit and 4 deltas per anchor.

    Args:
        in_channels (int): res4 channels. Defaults to 1024.
        feat_channels (int): Width of ``rpn_conv``. Defaults to 512.
        anchor_scales (Sequence[int]): Defaults to ``(4, 8, 16, 32)``.
        anchor_ratios (Sequence[float]): Defaults to ``(0.5, 1, 2)``.
        feat_stride (int): Defaults to 16.

    The anchor table is a non-persistent buffer computed from the scales
    and ratios (no ``cell_anchors`` key in checkpoints).

    Example:
        >>> head = BUTDRPNHead(64, 32)
        >>> logits, deltas = head(torch.rand(1, 64, 5, 7))
        >>> logits.shape, deltas.shape
        (torch.Size([1, 12, 5, 7]), torch.Size([1, 48, 5, 7]))
    """

    def __init__(self,
                 in_channels=1024,
                 feat_channels=512,
                 anchor_scales=(4, 8, 16, 32),
                 anchor_ratios=(0.5, 1, 2),
                 feat_stride=16):
        super().__init__()
        self.feat_stride = feat_stride
        anchors = torch.from_numpy(
            generate_anchors(16, anchor_ratios, anchor_scales))
        self.register_buffer('anchors', anchors, persistent=False)
        num_anchors = anchors.shape[0]
        self.rpn_conv = nn.Conv2d(in_channels, feat_channels, 3, 1, 1)
        self.rpn_cls = nn.Conv2d(feat_channels, num_anchors, 1)
        self.rpn_reg = nn.Conv2d(feat_channels, 4 * num_anchors, 1)

    def forward(self, x):
        x = F.relu(self.rpn_conv(x), inplace=True)
        return self.rpn_cls(x), self.rpn_reg(x)
