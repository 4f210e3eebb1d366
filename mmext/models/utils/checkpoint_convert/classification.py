# Copyright (c) mmext contributors. All rights reserved.
"""State-dict key converters: torchvision / timm -> mmpretrain keys.

mmpretrain's own released ``.pth`` files load unchanged (they already use
``backbone.*`` / ``head.*`` keys); these functions are for weights taken
from torchvision or timm (and, through :data:`CONVERTERS`, ViT-TRAR). Each
maps every key by an explicit rule and fails on a key no rule covers, so
nothing is silently dropped. Output keys are an ``ImageClassifier``'s:
``backbone.*`` plus ``head.fc.*`` (``LinearClsHead``) or
``head.layers.head.*`` (``VisionTransformerClsHead``).
"""
import os
import os.path as osp

import torch

from .common import apply_rules, unwrap_state_dict
from .vit_trar import convert_vit_trar

__all__ = [
    'convert_torchvision_resnet', 'convert_timm_seresnet', 'convert_timm_vit',
    'convert_timm_tinyvit', 'CONVERTERS', 'convert_checkpoint_file'
]

_BN = r'(weight|bias|running_mean|running_var|num_batches_tracked)'


def convert_torchvision_resnet(state_dict, keep_head=True):
    """torchvision ``resnet18-f37072fd.pth``-style keys -> mmpretrain
    ``ResNet`` (same module names: only the ``backbone.`` / ``head.``
    prefixes differ)."""
    rules = [
        (r'(conv1\.weight|bn1\.' + _BN + ')', r'backbone.\1'),
        (r'(layer\d+\.\d+\.(conv\d|bn\d|downsample\.[01])\..+)',
         r'backbone.\1'),
        (r'fc\.(weight|bias)', r'head.fc.\1'),
    ]
    return apply_rules(state_dict, rules, 'torchvision ResNet', keep_head)


def convert_timm_seresnet(state_dict, keep_head=True):
    """timm ``legacy_seresnet{50,101,152}`` -> mmpretrain ``SEResNet``.

    timm's legacy SE-ResNet puts the stride in each bottleneck's first 1x1
    conv (Caffe style) and max-pools without padding: build the mmpretrain
    backbone with ``style='caffe'``; the pooling window still differs by one
    pixel, so features are close to, not equal to, timm's.
    """
    rules = [
        (r'layer0\.(conv1\.weight|bn1\..+)', r'backbone.\1'),
        (r'(layer\d+\.\d+)\.se_module\.fc1\.(weight|bias)',
         r'backbone.\1.se_layer.conv1.conv.\2'),
        (r'(layer\d+\.\d+)\.se_module\.fc2\.(weight|bias)',
         r'backbone.\1.se_layer.conv2.conv.\2'),
        (r'(layer\d+\.\d+\.(conv\d|bn\d|downsample\.[01])\..+)',
         r'backbone.\1'),
        (r'last_linear\.(weight|bias)', r'head.fc.\1'),
    ]
    return apply_rules(state_dict, rules, 'timm legacy SE-ResNet', keep_head)


def convert_timm_vit(state_dict, keep_head=True):
    """timm ``vit_*`` (``VisionTransformer``) -> mmpretrain
    ``VisionTransformer`` + ``VisionTransformerClsHead`` (fused qkv and
    layouts are the same; only names differ)."""
    b = r'blocks\.(\d+)\.'
    rules = [
        (r'(cls_token|pos_embed)', r'backbone.\1'),
        (r'patch_embed\.proj\.(weight|bias)',
         r'backbone.patch_embed.projection.\1'),
        (b + r'norm1\.(weight|bias)', r'backbone.layers.\1.ln1.\2'),
        (b + r'norm2\.(weight|bias)', r'backbone.layers.\1.ln2.\2'),
        (b + r'attn\.(qkv|proj)\.(weight|bias)',
         r'backbone.layers.\1.attn.\2.\3'),
        (b + r'mlp\.fc1\.(weight|bias)',
         r'backbone.layers.\1.ffn.layers.0.0.\2'),
        (b + r'mlp\.fc2\.(weight|bias)',
         r'backbone.layers.\1.ffn.layers.1.\2'),
        (b + r'ls1\.gamma', r'backbone.layers.\1.attn.gamma1.weight'),
        (b + r'ls2\.gamma', r'backbone.layers.\1.ffn.gamma2.weight'),
        (r'norm\.(weight|bias)', r'backbone.ln1.\1'),
        (r'head\.(weight|bias)', r'head.layers.head.\1'),
    ]
    return apply_rules(state_dict, rules, 'timm ViT', keep_head)


def _tinyvit_downsample(m):
    # timm merges patches at the start of stage i, mmpretrain at the end of
    # stage i - 1
    layer = {'conv': 'conv2d', 'bn': 'bn2d'}[m.group(3)]
    return (f'backbone.stages.{int(m.group(1)) - 1}.downsample.{m.group(2)}.'
            f'{layer}.{m.group(4)}')


def _tinyvit_patch_embed(m):
    # timm conv1 / conv2 are mmpretrain's Sequential entries 0 / 2 (GELU
    # between them)
    layer = {'conv': 'conv2d', 'bn': 'bn2d'}[m.group(2)]
    return (f'backbone.patch_embed.seq.{2 * (int(m.group(1)) - 1)}.{layer}.'
            f'{m.group(3)}')


def convert_timm_tinyvit(state_dict, keep_head=True):
    """timm ``tiny_vit_{5m,11m,21m}_*`` -> mmpretrain ``TinyViT``.

    Conv-BN pairs are ``conv`` / ``bn`` in timm and ``conv2d`` / ``bn2d`` in
    mmpretrain, timm's patch merging sits at the start of stages 1..3
    (mmpretrain: end of stages 0..2), and timm's ``head.norm`` is
    mmpretrain's ``backbone.norm3``.
    """
    blk = r'(stages\.\d+\.blocks\.\d+\.(?:conv\d|local_conv))'
    rules = [
        (r'stages\.(\d+)\.downsample\.(conv\d)\.(conv|bn)\.(.+)',
         _tinyvit_downsample),
        (r'patch_embed\.conv([12])\.(conv|bn)\.(.+)', _tinyvit_patch_embed),
        (blk + r'\.conv\.(.+)', r'backbone.\1.conv2d.\2'),
        (blk + r'\.bn\.(.+)', r'backbone.\1.bn2d.\2'),
        (r'(stages\.\d+\.blocks\.\d+\.(?:attn|mlp)\..+)', r'backbone.\1'),
        (r'head\.norm\.(weight|bias)', r'backbone.norm3.\1'),
        (r'head\.fc\.(weight|bias)', r'head.fc.\1'),
    ]
    return apply_rules(state_dict, rules, 'timm TinyViT', keep_head)


#: source format name -> converter (the CLI's choices)
CONVERTERS = {
    'torchvision-resnet': convert_torchvision_resnet,
    'timm-seresnet': convert_timm_seresnet,
    'timm-vit': convert_timm_vit,
    'timm-tinyvit': convert_timm_tinyvit,
    'vit-trar': convert_vit_trar,
}


def convert_checkpoint_file(fmt, src, dst, keep_head=True):
    """Convert the ``fmt`` checkpoint ``src`` and save it to ``dst``.

    Args:
        fmt (str): A key of :data:`CONVERTERS`.
        src (str): Source checkpoint (``.pth`` / ``.bin``), loaded with
            :func:`mmext.utils.safe_torch_load`.
        dst (str): Output file: ``dict(state_dict, meta)``; its folder is
            created.
        keep_head (bool): Keep the classifier. Defaults to True.

    Returns:
        tuple[dict, dict]: The source and the converted state dicts.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        KeyError: A key no rule of ``fmt`` covers.
    """
    from mmext.utils import safe_torch_load
    if not osp.isfile(src):
        raise FileNotFoundError(f'{src} does not exist')
    state = unwrap_state_dict(safe_torch_load(src, map_location='cpu'))
    converted = CONVERTERS[fmt](state, keep_head=keep_head)
    if osp.dirname(dst):
        os.makedirs(osp.dirname(dst), exist_ok=True)
    torch.save(
        dict(
            state_dict=converted,
            meta=dict(converted_from=osp.basename(src), format=fmt)), dst)
    return state, converted
