# Copyright (c) mmext contributors. All rights reserved.
"""Building blocks shared by mmext backbones (timm-style layers module)."""
from .routing import SpanRouter, gumbel_softmax
from .span_attention import (SpanMasks, SpanRoutedAttention,
                             SpanRoutedEncoderLayer, build_span_masks)

__all__ = [
    'SpanRouter', 'gumbel_softmax', 'build_span_masks', 'SpanMasks',
    'SpanRoutedAttention', 'SpanRoutedEncoderLayer'
]
