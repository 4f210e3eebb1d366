# Copyright (c) mmext contributors. All rights reserved.
"""Inference fusion for the BUTD detector: BatchNorm + Scale into the convs.

Every caffe ResNet conv is followed by a BatchNorm (running statistics) and a
Scale layer, held as :class:`~torchvision.ops.misc.FrozenBatchNorm2d`. At
inference that is an affine map per channel, so it folds into the conv
before it (``W' = W · s``, ``b' = b - μ · s`` with
``s = γ / sqrt(σ² + eps)``), saving one full read and write of every
activation; OpenCV's caffe importer does the same. torchvision's
``fuse_conv_bn_eval`` expects a trainable ``BatchNorm2d`` and mmcv's
``fuse_conv_bn`` leaves FrozenBatchNorm2d alone, hence this module. The
un-fused model (the one that loads and exports checkpoints) is unchanged
unless ``inplace=True``.

:func:`convs_to_half` then runs the convolutions (backbone, RPN conv, res5:
nearly all the arithmetic) in fp16 or bf16 and keeps in float32 what
decides which regions come out: RPN sigmoid, anchor decoding and NMS, ROI
pooling, the class / attribute / box layers, softmax and box decoding, and
the stored features. A blanket ``torch.autocast`` (what
``benchmarks/gpu_suite.py`` used) runs the RPN scores and the heads in
half precision too.
"""
import copy
import functools

import torch
import torch.nn as nn
from torchvision.ops.misc import FrozenBatchNorm2d

__all__ = [
    'fold_frozen_bn', 'fuse_for_inference', 'is_fused', 'convs_to_half',
    'PRECISIONS'
]

#: ``precision`` names -> dtypes of :func:`convs_to_half`
PRECISIONS = dict(fp32=torch.float32, fp16=torch.float16, bf16=torch.bfloat16)
#: the submodules whose convs run in half precision; their outputs go back
#: to float32 before the RPN post-processing, ROI pooling and the heads
HALF_PARTS = ('backbone', 'rpn_head', 'roi_head.layer4')


@torch.no_grad()
def fold_frozen_bn(conv, bn):
    """A conv whose output equals ``bn(conv(x))`` (new weight and bias)."""
    scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        padding_mode=conv.padding_mode).to(conv.weight)
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    fused.bias.copy_(bias)
    return fused


def _fuse_children(module):
    """Fold ``convN`` / ``bnN`` attribute pairs and ``Sequential(conv, bn)``
    of one module; returns how many were folded."""
    count = 0
    names = dict(module.named_children())
    for name, child in names.items():
        if not (name.startswith('bn')
                and isinstance(child, FrozenBatchNorm2d)):
            continue
        conv = names.get('conv' + name[2:])
        if isinstance(conv, nn.Conv2d):
            setattr(module, 'conv' + name[2:], fold_frozen_bn(conv, child))
            setattr(module, name, nn.Identity())
            count += 1
    if isinstance(module, nn.Sequential):
        for i in range(len(module) - 1):
            if isinstance(module[i], nn.Conv2d) and isinstance(
                    module[i + 1], FrozenBatchNorm2d):
                module[i] = fold_frozen_bn(module[i], module[i + 1])
                module[i + 1] = nn.Identity()
                count += 1
    return count


def is_fused(model):
    """Whether :func:`fuse_for_inference` produced ``model``."""
    return getattr(model, '_fused_for_inference', False)


def fuse_for_inference(model, inplace=False, channels_last=False):
    """Fold every FrozenBatchNorm2d of ``model`` into its conv.

    Args:
        model (nn.Module): A :class:`BUTDFasterRCNN` (or any module whose
            convs are followed by FrozenBatchNorm2d as ``convN`` / ``bnN``
            attributes or inside a ``Sequential``).
        inplace (bool): Fuse ``model`` itself instead of a deep copy (saves
            the copy's memory: ~250 MB for ResNet-101). Defaults to False.
        channels_last (bool): Also store the conv weights channels-last
            (NHWC), oneDNN's preferred layout. Defaults to False.

    Returns:
        nn.Module: The fused model in eval mode; ``train()`` on it raises,
        since folded statistics cannot be fine-tuned separately.

    Example:
        >>> from mmext.models.detectors import BUTDFasterRCNN
        >>> model = BUTDFasterRCNN((1, 1, 1, 1), base_channels=8,
        ...                        rpn_channels=16).eval()
        >>> fused = fuse_for_inference(model)
        >>> sum(isinstance(m, FrozenBatchNorm2d) for m in fused.modules())
        0
    """
    if is_fused(model):
        return model
    if not inplace:
        model = copy.deepcopy(model)
    count = sum(_fuse_children(m) for m in list(model.modules()))
    left = [
        n for n, m in model.named_modules()
        if isinstance(m, FrozenBatchNorm2d)
    ]
    if left:
        raise ValueError(f'fuse_for_inference: {len(left)} FrozenBatchNorm2d '
                         f'layers do not follow a conv (e.g. {left[0]}); '
                         'leave this model un-fused')
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.eval()
    model._fused_for_inference = True
    model._fused_layers = count
    model.train = _refuse_train.__get__(model)
    return model


def _refuse_train(self, mode=True):
    if mode:
        raise RuntimeError('this BUTD model was fused for inference '
                           '(fuse_for_inference): BatchNorm is folded into '
                           'the convs; train or fine-tune the un-fused model')
    return nn.Module.train(self, False)


def _inputs_to(dtype, module, args):
    return tuple(
        a.to(dtype) if torch.is_tensor(a) and a.is_floating_point() else a
        for a in args)


def _outputs_to_float(module, args, out):
    if isinstance(out, tuple):
        return tuple(o.float() for o in out)
    return out.float()


def convs_to_half(model, precision='fp16'):
    """Store the conv weights of a fused BUTD model in fp16 / bf16 and run
    them there; the rest stays float32 (see the module docstring).

    Each of :data:`HALF_PARTS` casts its input to ``precision`` and its
    output back to float32 (forward hooks), so the state-dict keys stay and
    the anchors keep float32. In place; the device is the model's.

    Args:
        model (BUTDFasterRCNN): Fused by :func:`fuse_for_inference` (a
            FrozenBatchNorm2d between half convs would mix dtypes).
        precision (str): ``'fp16'``, ``'bf16'`` or ``'fp32'`` (no change).
            Defaults to ``'fp16'``.

    Returns:
        nn.Module: ``model``.

    Example:
        >>> from mmext.models.detectors import BUTDFasterRCNN
        >>> model = fuse_for_inference(BUTDFasterRCNN(
        ...     (1, 1, 1, 1), base_channels=8, rpn_channels=16).eval())
        >>> model = convs_to_half(model, 'bf16')
        >>> head = model.roi_head
        >>> model.backbone.conv1.weight.dtype, head.cls_score.weight.dtype
        (torch.bfloat16, torch.float32)
    """
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {sorted(PRECISIONS)}, '
                         f'got {precision!r}')
    done = getattr(model, '_conv_precision', 'fp32')
    if precision == done:
        return model
    if done != 'fp32' or precision == 'fp32':
        raise ValueError(f'the convs of this model already run in {done}; '
                         'build it again for another precision')
    if not is_fused(model):
        raise ValueError(f'precision={precision!r} needs the fused model '
                         '(fuse_for_inference; drop --no-fuse / fuse=False)')
    dtype = PRECISIONS[precision]
    for name in HALF_PARTS:
        part = model.get_submodule(name)
        for m in part.modules():
            if isinstance(m, nn.Conv2d):
                m.to(dtype)
        part.register_forward_pre_hook(functools.partial(_inputs_to, dtype))
        part.register_forward_hook(_outputs_to_float)
    model._conv_precision = precision
    return model
