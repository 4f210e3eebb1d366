# Copyright (c) mmext contributors. All rights reserved.
"""BUTD (bottom-up attention) Faster R-CNN, caffe-exact, pure PyTorch."""
from .box_ops import (caffe_nms, clip_boxes, decode_boxes, generate_anchors,
                      shifted_anchors)
from .butd_faster_rcnn import BUTDFasterRCNN
from .preprocess import PIXEL_MEANS_BGR, caffe_im_scale, caffe_preprocess
from .rpn import BUTDRPNHead, propose
from .select_regions import select_regions

__all__ = [
    'BUTDFasterRCNN', 'BUTDRPNHead', 'propose', 'caffe_nms', 'clip_boxes',
    'decode_boxes', 'generate_anchors', 'shifted_anchors', 'PIXEL_MEANS_BGR',
    'caffe_im_scale', 'caffe_preprocess', 'select_regions'
]
