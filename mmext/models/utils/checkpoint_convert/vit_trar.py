# Copyright (c) mmext contributors. All rights reserved.
"""ViT-TRAR (hsb1357173526/ViT-TRAR) checkpoints -> mmext ``TRARViT``.

The reference keeps separate ``query`` / ``key`` / ``value`` Linears and a
routing MLP per layer, and stores neither the span order values nor the head
count; :func:`vit_trar_model_cfg` recovers the rest of the model from the
shapes.
"""
import re

import torch

from .common import (CheckpointConversionError, apply_rules, check_state_dict,
                     strip_prefix, unwrap_state_dict)

__all__ = [
    'convert_vit_trar', 'vit_trar_model_cfg', 'convert_vit_trar_checkpoint'
]

_TRAR_LAYER = r'transformer\.encoder\.layer\.(\d+)\.'
_TRAR_RULES = [
    (r'transformer\.embeddings\.patch_embeddings\.(weight|bias)',
     r'backbone.patch_embed.projection.\1'),
    (r'transformer\.embeddings\.cls_token', 'backbone.cls_token'),
    (r'transformer\.embeddings\.position_embeddings', 'backbone.pos_embed'),
    (_TRAR_LAYER + r'attention_norm\.(weight|bias)',
     r'backbone.layers.\1.ln1.\2'),
    (_TRAR_LAYER + r'ffn_norm\.(weight|bias)', r'backbone.layers.\1.ln2.\2'),
    (_TRAR_LAYER + r'attn\.out\.(weight|bias)',
     r'backbone.layers.\1.attn.proj.\2'),
    (_TRAR_LAYER + r'attn\.routing_block\.mlp\.([02])\.(weight|bias)',
     r'backbone.layers.\1.attn.router.mlp.\2.\3'),
    (_TRAR_LAYER + r'ffn\.fc1\.(weight|bias)',
     r'backbone.layers.\1.ffn.layers.0.0.\2'),
    (_TRAR_LAYER + r'ffn\.fc2\.(weight|bias)',
     r'backbone.layers.\1.ffn.layers.1.\2'),
    (r'transformer\.encoder\.encoder_norm\.(weight|bias)', r'backbone.ln1.\1'),
    (r'head\.(weight|bias)', r'head.layers.head.\1'),
]


def convert_vit_trar(state_dict, keep_head=True):
    """hsb1357173526/ViT-TRAR (``ViT_TRAR_*.ckpt``, ``*_checkpoint.bin``)
    -> mmext ``TRARViT`` + ``VisionTransformerClsHead``.

    The reference keeps separate ``query`` / ``key`` / ``value`` Linears
    (concatenated here into ``qkv`` in that order) and a routing MLP per
    layer; a layer with a single order has a 1-output router, whose softmax
    is always 1: it is dropped (mmext builds no router there).
    """
    state_dict = {strip_prefix(k): v for k, v in state_dict.items()}
    qkv, rest = {}, {}
    for key, value in state_dict.items():
        m = re.fullmatch(
            _TRAR_LAYER + r'attn\.(query|key|value)\.'
            r'(weight|bias)', key)
        if m:
            qkv.setdefault((int(m.group(1)), m.group(3)), {})[m.group(2)] = \
                value
        else:
            rest[key] = value
    single = set()
    for key, value in rest.items():
        m = re.fullmatch(
            _TRAR_LAYER + r'attn\.routing_block\.mlp\.2\.'
            r'weight', key)
        if m and value.shape[0] == 1:
            single.add(int(m.group(1)))
    rest = {
        k: v
        for k, v in rest.items() if not any(
            k.startswith(f'transformer.encoder.layer.{i}.attn.'
                         'routing_block.') for i in single)
    }
    out = apply_rules(rest, _TRAR_RULES, 'ViT-TRAR', keep_head)
    for (i, name), parts in sorted(qkv.items()):
        if set(parts) != {'query', 'key', 'value'}:
            raise CheckpointConversionError(
                f'ViT-TRAR: layer {i} has attn.{sorted(parts)} {name} but '
                'not all of query, key, value; the checkpoint is incomplete')
        out[f'backbone.layers.{i}.attn.qkv.{name}'] = torch.cat(
            [parts['query'], parts['key'], parts['value']], 0)
    return out


def vit_trar_model_cfg(state_dict, orders=None, img_size=None, num_heads=None):
    """An mmext ``ImageClassifier`` config for a ViT-TRAR state dict.

    Width, depth, MLP width, patch size, image size (from the position
    embedding), number of orders and router reduction come from the shapes.
    The order *values* are not stored in the file: ``orders`` defaults to
    ``[0, 1, ..., L - 1]`` (the reference's [0, 1, 2] at 384 px and
    [0, 1, 2, 3] at 224 px). Pooling is ``'avg'``, the only one the
    reference implements. The head count is not in the shapes either:
    ``num_heads`` defaults to that of the mmpretrain ViT arch of the same
    sizes (12 for ViT-B), else width / 64.

    Raises:
        CheckpointConversionError: a key is missing, or ``orders`` /
            ``img_size`` contradict the shapes.
    """

    def get(key):
        for k in (key, 'module.' + key):
            if k in state_dict:
                return state_dict[k]
        raise CheckpointConversionError(
            f'ViT-TRAR: no {key!r} in the checkpoint; is it a '
            'hsb1357173526/ViT-TRAR (or ViT-pytorch) state dict?')

    proj = get('transformer.embeddings.patch_embeddings.weight')  # C 3 p p
    dims, patch = proj.shape[0], proj.shape[-1]
    tokens = get('transformer.embeddings.position_embeddings').shape[1]
    grid = int(round((tokens - 1)**0.5))
    if grid * grid != tokens - 1:
        raise CheckpointConversionError(
            f'ViT-TRAR: position embedding of {tokens} tokens is not CLS + '
            'a square grid')
    if img_size is not None and img_size != grid * patch:
        raise CheckpointConversionError(
            f'ViT-TRAR: --img-size {img_size} but the position embedding '
            f'is a {grid}x{grid} grid of {patch}-px patches '
            f'({grid * patch} px); drop --img-size')
    layers = sorted({
        int(m.group(1))
        for k in state_dict for m in [re.search(_TRAR_LAYER, k)] if m
    })
    ffn = get('transformer.encoder.layer.0.ffn.fc1.weight').shape[0]
    router = {
        i: state_dict.get(f'transformer.encoder.layer.{i}.attn.'
                          'routing_block.mlp.2.weight')
        for i in layers
    }
    spans = {w.shape[0] for w in router.values() if w is not None}
    if len(spans) != 1:
        raise CheckpointConversionError(
            f'ViT-TRAR: routers with {sorted(spans)} outputs; expected one '
            'routing MLP with L outputs in every layer')
    num_spans = spans.pop()
    if orders is None:
        orders = list(range(num_spans))
    elif len(orders) != num_spans:
        raise CheckpointConversionError(
            f'ViT-TRAR: --orders {list(orders)} has {len(orders)} entries '
            f'but the routers have {num_spans} outputs')
    hidden = router[layers[0]].shape[1]
    arch = dict(
        embed_dims=dims,
        num_layers=len(layers),
        num_heads=num_heads or _vit_heads(dims, len(layers), ffn),
        feedforward_channels=ffn)
    cfg = dict(
        type='ImageClassifier',
        backbone=dict(
            type='TRARViT',
            arch=arch,
            img_size=grid * patch,
            patch_size=patch,
            orders=list(orders),
            pooling='avg',
            routing_reduction=dims // hidden,
            proj_drop_rate=0.),
        neck=None)
    head = state_dict.get('head.weight')
    if head is not None:
        cfg['head'] = dict(
            type='VisionTransformerClsHead',
            num_classes=head.shape[0],
            in_channels=dims,
            loss=dict(type='CrossEntropyLoss'))
    return cfg


def _vit_heads(dims, depth, ffn):
    """Heads of the mmpretrain ViT arch with these sizes (not in shapes)."""
    from mmpretrain.models import VisionTransformer
    for arch in VisionTransformer.arch_zoo.values():
        if (arch['embed_dims'], arch['num_layers'],
                arch['feedforward_channels']) == (dims, depth, ffn):
            return arch['num_heads']
    return max(dims // 64, 1)  # ViT's 64-d heads


def convert_vit_trar_checkpoint(src,
                                dst=None,
                                orders=None,
                                img_size=None,
                                num_heads=None,
                                config=None,
                                keep_head=True):
    """Convert a ViT-TRAR checkpoint file and strictly load it into a model.

    Args:
        src (str): ``ViT_TRAR_*.ckpt`` (``train.py``'s dict with
            ``state_dict``) or a bare state dict (``*_checkpoint.bin``);
            loaded with :func:`mmext.utils.safe_torch_load`.
        dst (str, optional): Where to save ``dict(state_dict, meta)``.
            Defaults to None (not saved).
        orders (Sequence[int], optional): The span orders the model was
            trained with. Defaults to None (``[0, ..., L - 1]``).
        img_size (int, optional): Checked against the position embedding.
            Defaults to None (not checked).
        num_heads (int, optional): See :func:`vit_trar_model_cfg`.
            Defaults to None.
        config (str | Config, optional): An mmext config whose ``model``
            must take the weights (its backbone ``init_cfg`` is ignored).
            Defaults to None (a model built from the checkpoint's shapes).
        keep_head (bool): Keep the classifier. Defaults to True.

    Returns:
        tuple[dict, dict]: The converted state dict and the model config it
        was checked against.
    """
    from mmengine.config import Config

    from mmext.registry import MODELS
    from mmext.utils import register_all_modules, safe_torch_load
    register_all_modules()
    state_dict = unwrap_state_dict(safe_torch_load(src, map_location='cpu'))
    if not isinstance(state_dict, dict):
        raise CheckpointConversionError(
            f'{src}: not a state dict or a dict with state_dict')
    model_cfg = vit_trar_model_cfg(state_dict, orders, img_size, num_heads)
    converted = convert_vit_trar(state_dict, keep_head)
    if config is not None:
        cfg = Config.fromfile(config) if isinstance(config, str) else config
        model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') \
            else dict(cfg.model)
        model_cfg['backbone'] = dict(model_cfg['backbone'], init_cfg=None)
    source = f'{src} vs {config or "a model of its own shapes"}'
    if keep_head:
        check_state_dict(MODELS.build(model_cfg), converted, source)
    else:  # backbone weights only
        check_state_dict(
            MODELS.build(model_cfg['backbone']),
            {k[len('backbone.'):]: v
             for k, v in converted.items()}, source)
    if dst is not None:
        torch.save(
            dict(
                state_dict=converted,
                meta=dict(converted_from=f'ViT-TRAR {src}', model=model_cfg)),
            dst)
    return converted, model_cfg
