# Copyright (c) mmext contributors. All rights reserved.
"""Caffe-style ResNet for the BUTD detector: C4 trunk and the res5 head.

The MSRA caffe ResNets differ from torchvision / mmpretrain ResNets in three
places that change the numbers: the stride of a down-sampling block sits on
its first **1×1** conv (``branch2a``) rather than on the 3×3, the stem's
max-pool rounds its output size **up** (caffe's pooling layer), and every
conv is followed by a BatchNorm (running statistics only) plus a Scale
layer, held here as torchvision's :class:`FrozenBatchNorm2d` with
``eps=1e-5``. mmpretrain's ``ResNet(style='caffe')`` moves the stride but
keeps the floor-mode pool and trainable BN, so it is not used.

Module names follow torchvision (``conv1``, ``bn1``, ``layer1.0.conv1``,
``downsample.0`` ...); :func:`caffe_block_names` gives the caffe names the
converter maps them from.
"""
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops.misc import FrozenBatchNorm2d

__all__ = [
    'CaffeBottleneck', 'CaffeResNetC4', 'make_res_layer', 'caffe_block_names'
]


def caffe_block_names(num_blocks):
    """Caffe suffixes of a stage's blocks: ``a, b, c`` for up to three
    blocks, else ``a, b1, b2, ...`` (res3 / res4 of ResNet-101).

    Example:
        >>> caffe_block_names(4)
        ['a', 'b1', 'b2', 'b3']
    """
    if num_blocks <= 3:
        return ['abc'[i] for i in range(num_blocks)]
    return ['a'] + [f'b{i}' for i in range(1, num_blocks)]


class CaffeBottleneck(nn.Module):
    """Bottleneck with the stride on ``conv1`` (caffe ``branch2a``).

    Args:
        in_channels (int): Input channels.
        mid_channels (int): Channels of the 1×1 and 3×3 convs.
        stride (int): Stride of ``conv1`` and of the shortcut. Defaults to 1.
        dilation (int): Dilation (= padding) of the 3×3 conv. Defaults to 1.
        expansion (int): ``out = mid * expansion``. Defaults to 4.
    """

    def __init__(self,
                 in_channels,
                 mid_channels,
                 stride=1,
                 dilation=1,
                 expansion=4):
        super().__init__()
        out_channels = mid_channels * expansion
        self.conv1 = nn.Conv2d(
            in_channels, mid_channels, 1, stride, bias=False)
        self.bn1 = FrozenBatchNorm2d(mid_channels, eps=1e-5)
        self.conv2 = nn.Conv2d(
            mid_channels,
            mid_channels,
            3,
            1,
            dilation,
            dilation=dilation,
            bias=False)
        self.bn2 = FrozenBatchNorm2d(mid_channels, eps=1e-5)
        self.conv3 = nn.Conv2d(mid_channels, out_channels, 1, bias=False)
        self.bn3 = FrozenBatchNorm2d(out_channels, eps=1e-5)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                FrozenBatchNorm2d(out_channels, eps=1e-5))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        out += identity  # in place: no third (R, 2048, 14, 14) buffer
        return F.relu(out, inplace=True)


def make_res_layer(in_channels,
                   mid_channels,
                   num_blocks,
                   stride=1,
                   dilation=1):
    """``num_blocks`` bottlenecks; the first one strides and projects."""
    blocks = [CaffeBottleneck(in_channels, mid_channels, stride, dilation)]
    for _ in range(1, num_blocks):
        blocks.append(
            CaffeBottleneck(mid_channels * 4, mid_channels, 1, dilation))
    return nn.Sequential(*blocks)


class CaffeResNetC4(nn.Module):
    """conv1 … res4 of a caffe ResNet: a stride-16 feature map.

    Args:
        stage_blocks (Sequence[int]): Blocks of res2, res3, res4.
            Defaults to ``(3, 4, 23)`` (ResNet-101).
        base_channels (int): Stem width; stage i has ``base * 2**i`` mid
            channels and 4× that out. Defaults to 64.

    Example:
        >>> import torch
        >>> net = CaffeResNetC4((1, 1, 1), base_channels=8)
        >>> net(torch.rand(1, 3, 64, 96)).shape
        torch.Size([1, 128, 4, 6])
    """

    def __init__(self, stage_blocks=(3, 4, 23), base_channels=64):
        super().__init__()
        c = base_channels
        self.conv1 = nn.Conv2d(3, c, 7, 2, 3, bias=False)
        self.bn1 = FrozenBatchNorm2d(c, eps=1e-5)
        in_ch = c
        self.res_layers = []
        for i, n in enumerate(stage_blocks):
            layer = make_res_layer(in_ch, c * 2**i, n, 1 if i == 0 else 2)
            name = f'layer{i + 1}'
            self.add_module(name, layer)
            self.res_layers.append(name)
            in_ch = c * 2**i * 4
        self.out_channels = in_ch

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        # caffe's pooling rounds the output size up (pooling_layer.cpp)
        x = F.max_pool2d(x, 3, 2, 0, ceil_mode=True)
        for name in self.res_layers:
            x = getattr(self, name)(x)
        return x
