# Copyright (c) mmext contributors. All rights reserved.
"""State-dict key converters: torchvision / timm / ViT-TRAR -> mmext.

mmpretrain's own released ``.pth`` files load unchanged (they already use
``backbone.*`` / ``head.*`` keys); these functions are for weights taken
from torchvision or timm. Each maps every key by an explicit rule and fails
on a key no rule covers, so nothing is silently dropped. Output keys are an
``ImageClassifier``'s: ``backbone.*`` plus ``head.fc.*`` (``LinearClsHead``)
or ``head.layers.head.*`` (``VisionTransformerClsHead``).
"""
import re

import torch

__all__ = [
    'convert_torchvision_resnet', 'convert_timm_seresnet', 'convert_timm_vit',
    'convert_timm_tinyvit', 'convert_vit_trar', 'vit_trar_model_cfg',
    'convert_vit_trar_checkpoint',
    'check_state_dict', 'CheckpointConversionError', 'CONVERTERS',
    'unwrap_state_dict'
]


class CheckpointConversionError(ValueError):
    """A checkpoint does not have the layout its converter expects."""


def unwrap_state_dict(checkpoint):
    """The tensor dict inside a checkpoint (``state_dict`` / ``model`` key,
    as mmengine / timm training scripts save them, or the dict itself)."""
    for key in ('state_dict', 'model', 'state_dict_ema'):
        if isinstance(checkpoint, dict) and isinstance(
                checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint


def _apply(state_dict, rules, source, keep_head):
    """Rename with the first fully matching ``(regex, replacement)``; the
    replacement is a template (``\\1``) or a function of the match; head
    keys are dropped when ``keep_head`` is False."""
    out, unknown = {}, []
    for key, value in state_dict.items():
        for pattern, repl in rules:
            match = re.fullmatch(pattern, key)
            if match:
                new = match.expand(repl) if isinstance(repl, str) else \
                    repl(match)
                break
        else:
            unknown.append(key)
            continue
        if new.startswith('head.') and not keep_head:
            continue
        out[new] = value
    if unknown:
        shown = ', '.join(unknown[:5]) + (' ...' if len(unknown) > 5 else '')
        raise KeyError(
            f'{source}: {len(unknown)} keys match no conversion rule '
            f'({shown}); is this a {source} checkpoint?')
    return out


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
    return _apply(state_dict, rules, 'torchvision ResNet', keep_head)


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
    return _apply(state_dict, rules, 'timm legacy SE-ResNet', keep_head)


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
    return _apply(state_dict, rules, 'timm ViT', keep_head)


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
    return _apply(state_dict, rules, 'timm TinyViT', keep_head)


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
    (r'transformer\.encoder\.encoder_norm\.(weight|bias)',
     r'backbone.ln1.\1'),
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
    state_dict = {(k[len('module.'):] if k.startswith('module.') else k): v
                  for k, v in state_dict.items()}
    qkv, rest = {}, {}
    for key, value in state_dict.items():
        m = re.fullmatch(_TRAR_LAYER + r'attn\.(query|key|value)\.'
                         r'(weight|bias)', key)
        if m:
            qkv.setdefault((int(m.group(1)), m.group(3)), {})[m.group(2)] = \
                value
        else:
            rest[key] = value
    single = set()
    for key, value in rest.items():
        m = re.fullmatch(_TRAR_LAYER + r'attn\.routing_block\.mlp\.2\.'
                         r'weight', key)
        if m and value.shape[0] == 1:
            single.add(int(m.group(1)))
    rest = {
        k: v for k, v in rest.items()
        if not any(k.startswith(f'transformer.encoder.layer.{i}.attn.'
                                'routing_block.') for i in single)
    }
    out = _apply(rest, _TRAR_RULES, 'ViT-TRAR', keep_head)
    for (i, name), parts in sorted(qkv.items()):
        if set(parts) != {'query', 'key', 'value'}:
            raise CheckpointConversionError(
                f'ViT-TRAR: layer {i} has attn.{sorted(parts)} {name} but '
                'not all of query, key, value; the checkpoint is incomplete')
        out[f'backbone.layers.{i}.attn.qkv.{name}'] = torch.cat(
            [parts['query'], parts['key'], parts['value']], 0)
    return out


def vit_trar_model_cfg(state_dict, orders=None, img_size=None,
                       num_heads=None):
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
    arch = dict(embed_dims=dims, num_layers=len(layers),
                num_heads=num_heads or _vit_heads(dims, len(layers), ffn),
                feedforward_channels=ffn)
    cfg = dict(
        type='ImageClassifier',
        backbone=dict(type='TRARViT', arch=arch, img_size=grid * patch,
                      patch_size=patch, orders=list(orders),
                      pooling='avg', routing_reduction=dims // hidden,
                      proj_drop_rate=0.),
        neck=None)
    head = state_dict.get('head.weight')
    if head is not None:
        cfg['head'] = dict(type='VisionTransformerClsHead',
                           num_classes=head.shape[0], in_channels=dims,
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


def check_state_dict(model, state_dict, source='checkpoint'):
    """Load ``state_dict`` strictly into ``model``, reporting first every
    missing, unexpected and mis-shaped key.

    Raises:
        CheckpointConversionError: naming the counts and the keys.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model '
        f'{tuple(own[k].shape)}' for k in state_dict
        if k in own and own[k].shape != state_dict[k].shape
    ]
    if missing or unexpected or mismatched:

        def show(keys):
            return ', '.join(keys[:6]) + (' ...' if len(keys) > 6 else '')

        raise CheckpointConversionError(
            f'{source}: {len(missing)} missing, {len(unexpected)} unexpected '
            f'and {len(mismatched)} mismatched keys against the model'
            + (f'; missing: {show(missing)}' if missing else '')
            + (f'; unexpected: {show(unexpected)}' if unexpected else '')
            + (f'; mismatched: {show(mismatched)}' if mismatched else ''))
    model.load_state_dict(state_dict, strict=True)
    return model


def convert_vit_trar_checkpoint(src, dst=None, orders=None, img_size=None,
                                num_heads=None, config=None,
                                keep_head=True):
    """Convert a ViT-TRAR checkpoint file and strictly load it into a model.

    Args:
        src (str): ``ViT_TRAR_*.ckpt`` (``train.py``'s dict with
            ``state_dict``) or a bare state dict (``*_checkpoint.bin``);
            loaded with :func:`mmext.utils.safe_torch_load`.
        dst (str, optional): Where to save ``dict(state_dict, meta)``.
        orders (Sequence[int], optional): The span orders the model was
            trained with. Defaults to None (``[0, ..., L - 1]``).
        img_size (int, optional): Checked against the position embedding.
        num_heads (int, optional): See :func:`vit_trar_model_cfg`.
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
            {k[len('backbone.'):]: v for k, v in converted.items()}, source)
    if dst is not None:
        torch.save(
            dict(state_dict=converted,
                 meta=dict(converted_from=f'ViT-TRAR {src}',
                           model=model_cfg)), dst)
    return converted, model_cfg


#: source format name -> converter (the CLI's choices)
CONVERTERS = {
    'torchvision-resnet': convert_torchvision_resnet,
    'timm-seresnet': convert_timm_seresnet,
    'timm-vit': convert_timm_vit,
    'timm-tinyvit': convert_timm_tinyvit,
    'vit-trar': convert_vit_trar,
}
