# Copyright (c) mmext contributors. All rights reserved.
"""py-faster-rcnn box arithmetic as the BUTD caffe model uses it.

The detector was trained and is evaluated with the conventions of
py-faster-rcnn (``lib/rpn/generate_anchors.py``,
``lib/fast_rcnn/bbox_transform.py``, ``lib/nms/cpu_nms.pyx``), which differ
from torchvision / detectron2 / mmdet in ways that move boxes:

- box widths are ``x2 - x1 + 1`` (inclusive pixel coordinates);
- decoding has no clamp on ``dw`` / ``dh`` (detectron2 clamps at
  ``log(1000 / 16)``) and the decoded ``x2`` is ``ctr + 0.5 w`` (no -1);
- NMS uses ``+1`` areas and suppresses when IoU **≥** the threshold, the IoU
  computed in float32 and compared with the threshold as a double
  (torchvision's ``nms`` suppresses only when IoU > threshold, without
  ``+1``): :func:`caffe_nms` reproduces the reference keep lists exactly;
- anchors are the reference's integer-rounded table with centre (7.5, 7.5).
"""
import numpy as np
import torch

__all__ = [
    'generate_anchors', 'shifted_anchors', 'decode_boxes', 'clip_boxes',
    'caffe_nms', 'iou_suppression_matrix'
]


def _whctr(box):
    w = box[..., 2] - box[..., 0] + 1
    h = box[..., 3] - box[..., 1] + 1
    return w, h, box[..., 0] + 0.5 * (w - 1), box[..., 1] + 0.5 * (h - 1)


def _boxes_around(ws, hs, x, y):
    return np.stack([
        x - 0.5 * (ws - 1), y - 0.5 * (hs - 1), x + 0.5 * (ws - 1), y + 0.5 *
        (hs - 1)
    ],
                    axis=-1)


def generate_anchors(base_size=16, ratios=(0.5, 1, 2), scales=(4, 8, 16, 32)):
    """The py-faster-rcnn anchor table, ratio-major, as float32 (A, 4).

    Each ratio ``r`` gives a box of area ``base_size²`` with
    ``w = round(sqrt(area / r))``, ``h = round(w · r)`` around the centre of
    the ``(0, 0, base-1, base-1)`` cell, then each scale multiplies w and h.

    Example:
        >>> generate_anchors()[0].tolist()
        [-38.0, -16.0, 53.0, 31.0]
    """
    base = np.array([0, 0, base_size - 1, base_size - 1], dtype=np.float64)
    w, h, x, y = _whctr(base)
    ws = np.round(np.sqrt(w * h / np.asarray(ratios, dtype=np.float64)))
    hs = np.round(ws * np.asarray(ratios, dtype=np.float64))
    scales = np.asarray(scales, dtype=np.float64)
    out = []
    for rw, rh in zip(ws, hs):  # ratio-major, like the reference
        out.append(_boxes_around(rw * scales, rh * scales, x, y))
    return np.concatenate(out).astype(np.float32)


def shifted_anchors(anchors, height, width, stride=16):
    """Anchors at every cell, ordered (h, w, a) like the RPN outputs.

    Args:
        anchors (Tensor): (A, 4) table.
        height (int): Feature-map rows.
        width (int): Feature-map columns.
        stride (int): Pixels per cell (no half-cell offset). Defaults to 16.

    Returns:
        Tensor: (height · width · A, 4).
    """
    dev = anchors.device
    sy, sx = torch.meshgrid(
        torch.arange(height, device=dev) * stride,
        torch.arange(width, device=dev) * stride,
        indexing='ij')
    shifts = torch.stack([sx, sy, sx, sy], dim=-1).reshape(-1, 1, 4)
    return (anchors[None] + shifts.to(anchors.dtype)).reshape(-1, 4)


def decode_boxes(boxes, deltas):
    """``bbox_transform_inv``: apply (dx, dy, dw, dh) deltas to boxes.

    Args:
        boxes (Tensor): (N, 4) x1, y1, x2, y2.
        deltas (Tensor): (N, 4·K) deltas, K boxes per row (class-major).

    Returns:
        Tensor: (N, 4·K), unclipped, in ``deltas``' dtype.
    """
    boxes = boxes.to(deltas.dtype)
    w = boxes[:, 2] - boxes[:, 0] + 1.0
    h = boxes[:, 3] - boxes[:, 1] + 1.0
    cx = (boxes[:, 0] + 0.5 * w)[:, None]
    cy = (boxes[:, 1] + 0.5 * h)[:, None]
    w, h = w[:, None], h[:, None]
    pcx = deltas[:, 0::4] * w + cx
    pcy = deltas[:, 1::4] * h + cy
    pw = torch.exp(deltas[:, 2::4]) * w  # no clamp (reference has none)
    ph = torch.exp(deltas[:, 3::4]) * h
    out = torch.stack(
        [pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph],
        dim=-1)
    return out.reshape(deltas.shape)


def clip_boxes(boxes, height, width):
    """Clip (N, 4·K) boxes to ``[0, width-1] × [0, height-1]``."""
    out = boxes.clone()
    out[:, 0::4] = out[:, 0::4].clamp(0, width - 1)
    out[:, 1::4] = out[:, 1::4].clamp(0, height - 1)
    out[:, 2::4] = out[:, 2::4].clamp(0, width - 1)
    out[:, 3::4] = out[:, 3::4].clamp(0, height - 1)
    return out


def iou_suppression_matrix(boxes, thresh):
    """(N, N) bool: ``IoU(i, j) >= thresh`` with ``cpu_nms`` arithmetic.

    Areas and intersections use ``+1`` widths in float32; the float32 IoU
    is compared with ``thresh`` as a double, as the Cython kernel does
    (IoU 70/100 = 0.69999999 in float32 does *not* reach 0.7).
    """
    b = boxes.float()
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    w = (torch.minimum(b[:, None, 2], b[None, :, 2]) -
         torch.maximum(b[:, None, 0], b[None, :, 0]) + 1).clamp(min=0)
    h = (torch.minimum(b[:, None, 3], b[None, :, 3]) -
         torch.maximum(b[:, None, 1], b[None, :, 1]) + 1).clamp(min=0)
    inter = w * h
    iou = inter / (area[:, None] + area[None, :] - inter)
    return iou.double() >= thresh


def caffe_nms(boxes, scores, thresh, max_keep=None):
    """Greedy NMS exactly as py-faster-rcnn's ``cpu_nms``.

    Args:
        boxes (Tensor): (N, 4).
        scores (Tensor): (N,).
        thresh (float): Suppress a box whose IoU with a kept one is ≥ this.
        max_keep (int, optional): Stop after this many kept boxes (the
            proposal layer only uses the first 300). Defaults to None.

    Returns:
        Tensor: int64 indices of the kept boxes, highest score first.
    """
    n = boxes.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order].float()
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    alive = torch.ones(n, dtype=torch.bool, device=boxes.device)
    keep = []
    limit = n if max_keep is None else max_keep
    # one kept box per step, vectorised over the rest: O(kept · N) memory
    # instead of an N × N matrix (N = 6000 proposals before NMS)
    for i in range(n):
        if not alive[i]:
            continue
        keep.append(i)
        if len(keep) >= limit or i == n - 1:
            break
        rest = b[i + 1:]
        w = (torch.minimum(b[i, 2], rest[:, 2]) -
             torch.maximum(b[i, 0], rest[:, 0]) + 1).clamp(min=0)
        h = (torch.minimum(b[i, 3], rest[:, 3]) -
             torch.maximum(b[i, 1], rest[:, 1]) + 1).clamp(min=0)
        inter = w * h
        iou = inter / (area[i] + area[i + 1:] - inter)
        alive[i + 1:] &= ~(iou.double() >= thresh)
    return order[torch.as_tensor(keep, dtype=torch.long, device=boxes.device)]
