# Copyright (c) mmext contributors. All rights reserved.
"""BUTD box head: ROI pooling, res5, class / box / attribute predictions."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import roi_pool

from .resnet_caffe import make_res_layer

__all__ = ['BUTDRoIHead', 'caffe_argmax']


def caffe_argmax(x, dim=-1):
    """Arg-max that picks the **last** of tied maxima, like caffe's ArgMax
    layer (``partial_sort`` with ``std::greater`` on (value, index) pairs);
    ``torch.argmax`` picks the first."""
    n = x.shape[dim]
    return n - 1 - torch.argmax(torch.flip(x, [dim]), dim=dim)


class BUTDRoIHead(nn.Module):
    """ROI pooling 14×14 at 1/16 → res5 (stride 1, dilation 2) → mean pool.

    Caffe's ``ROIPooling`` is the same arithmetic as
    :func:`torchvision.ops.roi_pool` (coordinates rounded after scaling,
    ``end - start + 1`` sizes, floor / ceil bin edges, empty bins 0).
    ``bbox_pred`` keeps caffe's class-major layout with 4 rows for the
    background class (``num_classes · 4`` outputs); the attribute head embeds
    the arg-max class of ``cls_score`` (background included), concatenates
    it to the pooled feature and predicts ``num_attributes`` logits.

    Args:
        in_channels (int): res4 channels. Defaults to 1024.
        mid_channels (int): res5 bottleneck width. Defaults to 512.
        num_blocks (int): res5 blocks. Defaults to 3.
        num_classes (int): Object classes incl. background. Defaults to 1601.
        num_attributes (int): Attributes incl. "no attribute". Defaults to
            401.
        attr_embed_dims (int): Class-embedding width. Defaults to 256.
        attr_hidden (int): ``fc_attr`` width. Defaults to 512.
        roi_size (int): Defaults to 14.
        spatial_scale (float): Defaults to 1/16.
    """

    def __init__(self,
                 in_channels=1024,
                 mid_channels=512,
                 num_blocks=3,
                 num_classes=1601,
                 num_attributes=401,
                 attr_embed_dims=256,
                 attr_hidden=512,
                 roi_size=14,
                 spatial_scale=1 / 16):
        super().__init__()
        self.roi_size = roi_size
        self.spatial_scale = spatial_scale
        self.layer4 = make_res_layer(
            in_channels, mid_channels, num_blocks, stride=1, dilation=2)
        self.out_channels = mid_channels * 4
        self.cls_score = nn.Linear(self.out_channels, num_classes)
        self.bbox_pred = nn.Linear(self.out_channels, 4 * num_classes)
        self.cls_embedding = nn.Embedding(num_classes, attr_embed_dims)
        self.fc_attr = nn.Linear(self.out_channels + attr_embed_dims,
                                 attr_hidden)
        self.attr_score = nn.Linear(attr_hidden, num_attributes)

    def pool_features(self, feats, rois, chunk_size=None):
        """(R, 2048) pool5 features of ``rois`` (R, 5) = (batch, x1..y2) in
        input-image pixels.

        res5 runs on ``chunk_size`` ROIs at a time (ROIs are independent):
        300 ROIs at once hold ~0.5 GB per 2048×14×14 activation.
        """
        # torchvision's CPU roi_pool has no bf16 / fp16 kernel: pool in
        # fp32 (a no-op for fp32 features); res5 follows autocast again
        x = roi_pool(feats.float(), rois.float(), self.roi_size,
                     self.spatial_scale)
        chunks = x.split(chunk_size) if chunk_size else [x]
        return torch.cat([self.layer4(c).mean(dim=(2, 3)) for c in chunks])

    def predict(self, pooled):
        """Logits of classes (R, C), attributes (R, M) and box deltas
        (R, 4·C)."""
        cls_score = self.cls_score(pooled)
        label = caffe_argmax(cls_score, dim=1)
        attr_in = torch.cat([pooled, self.cls_embedding(label)], dim=1)
        attr_score = self.attr_score(F.relu(self.fc_attr(attr_in)))
        return cls_score, attr_score, self.bbox_pred(pooled)
