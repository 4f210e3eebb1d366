# Copyright (c) mmext contributors. All rights reserved.
"""BUTD caffemodel → :class:`BUTDFasterRCNN` state dict, with a report.

What the mapping does and why:

- **BatchNorm + Scale → FrozenBatchNorm2d.** Caffe's BatchNorm blobs are
  ``[mean, var, scale_factor]`` and at test time it uses ``mean / sf`` and
  ``var / sf`` (0 when ``sf == 0``; ``batch_norm_layer.cpp``); the Scale
  layer holds γ and β. They become ``running_mean = mean / sf``,
  ``running_var = var / sf``, ``weight = γ``, ``bias = β`` with eps 1e-5.
  caffemodel2pytorch and ruotianluo's converter drop ``sf``, which is only
  right when ``sf == 1``.
- **RPN 24 → 12 logits.** The 24 ``rpn_cls_score`` channels are blocked,
  0-11 background and 12-23 foreground, soft-maxed pairwise;
  ``softmax([b, f])[1] = sigmoid(f - b)``, so ``rpn_cls`` gets
  ``W[12:24] - W[0:12]`` and ``b[12:24] - b[0:12]``: equal probabilities.
- **bbox_pred stays 6404 = 1601 × 4**, class-major with background rows
  0-3 (unused at test). Keeping caffe's layout keeps one class index for
  ``cls_score``, ``bbox_pred``, ``cls_embedding`` and the VG vocabulary
  files (index 0 = ``__background__``); detectron2 ports drop the rows and
  move background last, which shifts every index by one.
- **Anchors are generated** from the scales / ratios (no ``cell_anchors``).
- Conv (out, in, kh, kw), InnerProduct (out, in) and Embed (1601, 256) are
  laid out as in PyTorch; no transpose.

Every blob read is listed in the report as used (with its target keys) or
ignored (with the reason); a missing layer or a wrong shape is an error.
"""
import inspect
from collections import OrderedDict

import torch

from mmext.models.detectors.butd.butd_faster_rcnn import BUTDFasterRCNN
from mmext.models.detectors.butd.resnet_caffe import caffe_block_names
from mmext.utils.fileio import read_text_file
from .common import CheckpointConversionError, compare_state_dict

__all__ = [
    'ButdConversionError', 'expected_caffe_layers', 'convert_caffe_layers',
    'RELATION_LAYERS', 'DEFAULT_ARCH', 'arch_from_model_cfg', 'read_vg_vocab',
    'convert_butd_caffemodel'
]

#: BUTDFasterRCNN's defaults (the released VG model): read from its
#: constructor, the one place they are written
_MODEL_DEFAULTS = {
    name: p.default
    for name, p in inspect.signature(
        BUTDFasterRCNN.__init__).parameters.items()
    if p.default is not inspect.Parameter.empty
}
#: the arguments that shape the caffe network, plus anchors per position
DEFAULT_ARCH = dict(
    {
        k: _MODEL_DEFAULTS[k]
        for k in ('stage_blocks', 'base_channels', 'rpn_channels',
                  'num_classes', 'num_attributes', 'attr_embed_dims',
                  'attr_hidden')
    },
    num_anchors=len(_MODEL_DEFAULTS['anchor_scales']) *
    len(_MODEL_DEFAULTS['anchor_ratios']))

#: layers of the relation head trained alongside the detector
RELATION_LAYERS = ('heatmap', 'fc_rel1', 'fc_subject', 'fc_object',
                   'rel_merge', 'rel_score', 'relation')
_RELATION_REASON = ('relation head (trained with HAS_RELATIONS, absent from '
                    'test.prototxt): not part of detection or features')


class ButdConversionError(CheckpointConversionError):
    """The caffemodel does not match the BUTD test network."""


def _arch(arch):
    out = dict(DEFAULT_ARCH)
    out.update({k: v for k, v in (arch or {}).items() if k in out})
    return out


def _layer_plan(arch):
    """[(caffe layer, kind, target prefix, blob shapes)] of the network."""
    a = _arch(arch)
    plan = []

    def conv(name, target, out, cin, k, bias=False):
        shapes = [(out, cin, k, k)] + ([(out, )] if bias else [])
        plan.append((name, 'Convolution', target, shapes))

    def bn(suffix, target, c):
        plan.append((f'bn{suffix}', 'BatchNorm', target, [(c, ), (c, ),
                                                          (1, )]))
        plan.append((f'scale{suffix}', 'Scale', target, [(c, ), (c, )]))

    c = a['base_channels']
    conv('conv1', 'backbone.conv1', c, 3, 7)
    bn('_conv1', 'backbone.bn1', c)
    in_ch = c
    for s, n in enumerate(a['stage_blocks']):
        mid = c * 2**s
        prefix = f'backbone.layer{s + 1}' if s < 3 else 'roi_head.layer4'
        for i, b in enumerate(caffe_block_names(n)):
            tag, tgt = f'{s + 2}{b}', f'{prefix}.{i}'
            if i == 0:
                conv(f'res{tag}_branch1', f'{tgt}.downsample.0', mid * 4,
                     in_ch, 1)
                bn(f'{tag}_branch1', f'{tgt}.downsample.1', mid * 4)
            for j, (br, k) in enumerate((('2a', 1), ('2b', 3), ('2c', 1))):
                cin = (in_ch if i == 0 else mid * 4) if j == 0 else mid
                cout = mid * 4 if j == 2 else mid
                conv(f'res{tag}_branch{br}', f'{tgt}.conv{j + 1}', cout, cin,
                     k)
                bn(f'{tag}_branch{br}', f'{tgt}.bn{j + 1}', cout)
        in_ch = mid * 4
        if s == 2:
            c4 = in_ch
    r, na = a['rpn_channels'], a['num_anchors']
    conv('rpn_conv/3x3', 'rpn_head.rpn_conv', r, c4, 3, bias=True)
    conv('rpn_cls_score', 'rpn_head.rpn_cls', 2 * na, r, 1, bias=True)
    conv('rpn_bbox_pred', 'rpn_head.rpn_reg', 4 * na, r, 1, bias=True)
    nc, c5 = a['num_classes'], in_ch
    for name, out, cin in (('cls_score', nc, c5), ('bbox_pred', 4 * nc, c5)):
        plan.append((name, 'InnerProduct', f'roi_head.{name}', [(out, cin),
                                                                (out, )]))
    plan.append(('cls_embedding', 'Embed', 'roi_head.cls_embedding',
                 [(nc, a['attr_embed_dims'])]))
    hid = a['attr_hidden']
    plan.append(('fc_attr', 'InnerProduct', 'roi_head.fc_attr',
                 [(hid, c5 + a['attr_embed_dims']), (hid, )]))
    plan.append(('attr_score', 'InnerProduct', 'roi_head.attr_score',
                 [(a['num_attributes'], hid), (a['num_attributes'], )]))
    return plan


def expected_caffe_layers(arch=None):
    """Layer name → ``dict(type, shapes)`` of every blob the test network
    has (the table ``test.prototxt`` implies), for ``arch`` overrides of
    :data:`DEFAULT_ARCH`."""
    return OrderedDict((name, dict(type=kind, shapes=[list(s) for s in shp]))
                       for name, kind, _, shp in _layer_plan(arch))


def _blobs(layer, name, shapes):
    """The layer's blobs as tensors of the expected shapes; legacy 4-d
    blobs (1, 1, out, in) with the right element count are reshaped."""
    blobs = [torch.as_tensor(b) for b in layer.blobs]
    if len(blobs) != len(shapes):
        raise ButdConversionError(
            f'caffemodel layer {name!r} has {len(blobs)} blobs, the BUTD '
            f'test network expects {len(shapes)} (shapes {shapes})')
    out = []
    for i, (b, shape) in enumerate(zip(blobs, shapes)):
        if tuple(b.shape) != tuple(shape):
            if b.numel() != torch.Size(shape).numel():
                raise ButdConversionError(
                    f'caffemodel layer {name!r} blob {i} has shape '
                    f'{tuple(b.shape)}, expected {tuple(shape)}; is this the '
                    'VG 1600-400-20 ResNet-101 model? (set the model '
                    'arguments in the config to match)')
            b = b.reshape(shape)
        out.append(b.float())
    return out


def _fold_bn(bn_blobs, scale_blobs):
    mean, var, sf = bn_blobs
    # caffe: factor = sf == 0 ? 0 : 1 / sf, then mean * factor (float32)
    factor = torch.where(sf == 0, torch.zeros_like(sf), 1 / sf)
    gamma, beta = scale_blobs
    return OrderedDict(
        weight=gamma,
        bias=beta,
        running_mean=mean * factor,
        running_var=var * factor)


def convert_caffe_layers(layers, arch=None):
    """Map caffemodel layers to a :class:`BUTDFasterRCNN` state dict.

    Args:
        layers (Mapping[str, CaffeLayer]): From
            :func:`mmext.utils.caffemodel.read_caffemodel` (blobs may be
            numpy arrays or tensors, meta tensors included).
        arch (dict, optional): Overrides of :data:`DEFAULT_ARCH` (the
            model's ``stage_blocks``, ``base_channels`` ...).

    Returns:
        tuple[OrderedDict, dict]: The state dict and the report
        ``dict(used=[...], ignored=[...])``; each used entry names the
        caffe layer, its blob shapes and the keys it became; each ignored
        entry the layer, its shapes and why.
    """
    plan = _layer_plan(arch)
    missing = [name for name, *_ in plan if name not in layers]
    if missing:
        raise ButdConversionError(
            f'the caffemodel lacks {len(missing)} layers of the BUTD test '
            f'network (first: {missing[0]!r}); give '
            'resnet101_faster_rcnn_final.caffemodel, or set the model '
            'arguments (stage_blocks, ...) to the network it holds')
    sd = OrderedDict()
    used = []
    pending_bn = {}
    for name, kind, target, shapes in plan:
        blobs = _blobs(layers[name], name, shapes)
        keys = []
        if kind in ('BatchNorm', 'Scale'):  # folded when Scale comes
            if kind == 'BatchNorm':
                pending_bn[target] = blobs
                params = ('running_mean', 'running_var')
            else:
                folded = _fold_bn(pending_bn.pop(target), blobs)
                sd.update((f'{target}.{k}', v) for k, v in folded.items())
                params = ('weight', 'bias')
            used.append(
                dict(
                    layer=name,
                    shapes=shapes,
                    keys=[f'{target}.{p}' for p in params]))
            continue
        if name == 'rpn_cls_score':  # blocked (bg 0..A-1, fg A..2A-1)
            na = shapes[0][0] // 2
            w, b = blobs
            blobs = [w[na:] - w[:na], b[na:] - b[:na]]
        for suffix, blob in zip(('weight', 'bias'), blobs):
            sd[f'{target}.{suffix}'] = blob
            keys.append(f'{target}.{suffix}')
        used.append(dict(layer=name, shapes=shapes, keys=keys))
    planned = {name for name, *_ in plan}
    ignored = []
    for name, layer in layers.items():
        if name in planned or not layer.blobs:
            continue
        shapes = [list(b.shape) for b in layer.blobs]
        reason = (
            _RELATION_REASON if name.startswith(RELATION_LAYERS) else
            'not a layer of the BUTD test network (test.prototxt)')
        ignored.append(dict(layer=name, shapes=shapes, reason=reason))
    return sd, dict(used=used, ignored=ignored)


def arch_from_model_cfg(model_cfg=None):
    """:data:`DEFAULT_ARCH` overrides from ``BUTDFasterRCNN`` arguments."""
    cfg = dict(model_cfg or {})
    arch = {k: cfg[k] for k in DEFAULT_ARCH if k in cfg}
    if 'anchor_scales' in cfg or 'anchor_ratios' in cfg:
        arch['num_anchors'] = len(
            cfg.get('anchor_scales', _MODEL_DEFAULTS['anchor_scales'])) * len(
                cfg.get('anchor_ratios', _MODEL_DEFAULTS['anchor_ratios']))
    return arch


def read_vg_vocab(path, background):
    """A VG vocabulary file (``objects_vocab.txt``: one entry a line,
    synonyms comma-separated) → names with ``background`` at index 0.

    Raises:
        InputFileError: Not a regular file (a FIFO never blocks), above
            16 MiB (the 1600-line file has 15 kB) or not UTF-8 text.
    """
    text = read_text_file(path, 'vocabulary file', max_bytes=16 << 20)
    return [background
            ] + [line.strip() for line in text.splitlines() if line.strip()]


def convert_butd_caffemodel(src,
                            dst=None,
                            model_cfg=None,
                            objects_vocab=None,
                            attributes_vocab=None):
    """Read ``src``, convert, load strictly into the model, save ``dst``.

    Args:
        src (str): ``resnet101_faster_rcnn_final.caffemodel``.
        dst (str, optional): Output checkpoint (``state_dict`` + ``meta``
            with the report and vocabularies). Defaults to None (no file).
        model_cfg (dict, optional): ``BUTDFasterRCNN`` arguments (a
            config's ``model``). Defaults to the released model.
        objects_vocab (str, optional): ``objects_vocab.txt`` (1600 lines).
        attributes_vocab (str, optional): ``attributes_vocab.txt`` (400).

    Returns:
        tuple[OrderedDict, dict]: State dict and report.

    Raises:
        CaffeModelError: ``src`` is not a readable caffemodel (not a
            regular file, truncated, malformed); one line naming the file,
            layer, blob and byte.
        ButdConversionError: It does not hold the BUTD test network.
        InputFileError: A vocabulary file is not a regular UTF-8 file.
    """
    from mmext.utils.caffemodel import read_caffemodel
    cfg = {
        k: v
        for k, v in dict(model_cfg or {}).items()
        if k not in ('type', 'init_cfg', 'data_preprocessor')
    }
    sd, report = convert_caffe_layers(
        read_caffemodel(src), arch_from_model_cfg(cfg))
    with torch.device('meta'):  # keys and shapes only, no 250 MB copy
        model = BUTDFasterRCNN(**cfg)
    res = compare_state_dict(model, sd)
    bad = res['mismatched'] + res['missing'] + res['unexpected']
    if bad:
        raise ButdConversionError(
            f'{src}: converted weights do not fit BUTDFasterRCNN({cfg}): '
            f'{len(bad)} keys differ (first: {bad[0]})')
    # assign: no copy into (and no warning about) meta tensors
    model.load_state_dict(sd, strict=True, assign=True)
    meta = dict(
        converted_from=f'caffe {src}',
        conversion_report=report,
        dataset_meta={})
    nc = sd['roi_head.cls_score.weight'].shape[0]
    na = sd['roi_head.attr_score.weight'].shape[0]
    for key, path, bg, n in (('classes', objects_vocab, '__background__', nc),
                             ('attributes', attributes_vocab,
                              '__no_attribute__', na)):
        if path:
            names = read_vg_vocab(path, bg)
            if len(names) != n:
                raise ButdConversionError(
                    f'{path} has {len(names) - 1} entries but the model '
                    f'predicts {n - 1} {key} (+ index 0); give the '
                    'vocabulary of the model (data/genome/1600-400-20/)')
            meta['dataset_meta'][key] = names
    if dst:
        torch.save(dict(state_dict=sd, meta=meta), dst)
    return sd, report
