# Copyright (c) mmext contributors. All rights reserved.
"""R2Gen checkpoints (zhjohnchan/R2Gen) -> mmext ``R2GenReportGenerator``.

R2Gen's released ``model_iu_xray.pth`` / ``model_mimic_cxr.pth`` are dicts
with ``state_dict`` (keys of ``R2GenModel``: ``visual_extractor.model.*`` =
a torchvision ResNet-101 without avgpool/fc as an ``nn.Sequential``,
``encoder_decoder.*``), ``epoch``, ``optimizer`` and ``monitor_best``. Its
vocabulary is not in the file: R2Gen rebuilds it from ``annotation.json``
(train split, threshold 3 for IU X-ray / 10 for MIMIC-CXR), so the same
annotation file (or a JSON token list) is needed. The result carries the
vocabulary in ``meta['dataset_meta']['vocab']``, so ``tools/test.py`` and
``tools/report/generate.py`` never rebuild it.
"""
import json
import re
from collections import OrderedDict

import torch

from .common import (CheckpointConversionError, compare_state_dict,
                     strip_prefix, unwrap_state_dict)

__all__ = [
    'R2GenConversionError', 'convert_r2gen_state_dict', 'r2gen_vocab_size',
    'r2gen_head_args', 'load_r2gen_vocab', 'check_r2gen_config',
    'convert_r2gen_checkpoint'
]

# torchvision Sequential index -> mmpretrain ResNet module (same sub-keys)
_RESNET_SEQ = {
    '0': 'conv1',
    '1': 'bn1',
    '4': 'layer1',
    '5': 'layer2',
    '6': 'layer3',
    '7': 'layer4'
}
_DROPPED = ('encoder_decoder.model.tgt_embed.1.pe', )  # recomputed buffer


class R2GenConversionError(CheckpointConversionError):
    """The input is not an R2Gen checkpoint or does not fit the tokenizer."""


def convert_r2gen_state_dict(state_dict):
    """R2Gen ``R2GenModel`` keys -> ``R2GenReportGenerator`` keys."""
    out = OrderedDict()
    unknown = []
    for key, value in state_dict.items():
        key = strip_prefix(key)  # saved from nn.DataParallel (n_gpu > 1)
        if key in _DROPPED:
            continue
        m = re.match(r'visual_extractor\.model\.(\d+)\.(.*)', key)
        if m:
            if m.group(1) not in _RESNET_SEQ:
                unknown.append(key)
                continue
            out[f'backbone.{_RESNET_SEQ[m.group(1)]}.{m.group(2)}'] = value
        elif key.startswith('encoder_decoder.'):
            out['head.' + key[len('encoder_decoder.'):]] = value
        else:
            unknown.append(key)
    if unknown:
        raise R2GenConversionError(
            f'{len(unknown)} keys are not R2Gen keys (first: {unknown[0]!r});'
            ' expected visual_extractor.model.* and encoder_decoder.*')
    return out


def r2gen_vocab_size(state_dict):
    """Vocabulary size V of an R2Gen state dict (its logit has V + 1 rows)."""
    for key in ('encoder_decoder.logit.weight', 'head.logit.weight',
                'module.encoder_decoder.logit.weight'):
        if key in state_dict:
            return state_dict[key].shape[0] - 1
    raise R2GenConversionError(
        'no encoder_decoder.logit.weight in the checkpoint; is it an R2Gen '
        'checkpoint?')


def r2gen_head_args(state_dict):
    """``R2GenHead`` arguments read from the shapes: ``in_channels``,
    ``d_model``, ``d_ff``, ``num_layers``, ``rm_d_model``,
    ``rm_num_slots``."""
    sd = {k.replace('module.', '', 1): v for k, v in state_dict.items()}
    w = sd['encoder_decoder.att_embed.0.weight']
    layers = {
        int(k.split('.')[4])
        for k in sd if k.startswith('encoder_decoder.model.encoder.layers.')
    }
    rm_w = sd['encoder_decoder.model.rm.W.weight']
    mlp = sd['encoder_decoder.model.decoder.layers.0.sublayer.0.norm.'
             'mlp_gamma.0.weight']
    return dict(
        in_channels=w.shape[1],
        d_model=w.shape[0],
        d_ff=sd['encoder_decoder.model.encoder.layers.0.feed_forward.w_1.'
                'weight'].shape[0],
        num_layers=len(layers),
        rm_d_model=rm_w.shape[1],
        rm_num_slots=mlp.shape[1] // rm_w.shape[1])


def load_r2gen_vocab(ann_file=None,
                     vocab_file=None,
                     dataset='iu_xray',
                     threshold=None,
                     clean_mode='r2gen'):
    """The vocabulary the checkpoint was trained with.

    Args:
        ann_file (str, optional): The ``annotation.json`` of training (the
            vocabulary is rebuilt from its train split as R2Gen does).
        vocab_file (str, optional): A JSON list of tokens in id order
            1..V; wins over ``ann_file``.
        dataset (str): ``'iu_xray'`` or ``'mimic_cxr'``. Defaults to
            'iu_xray'.
        threshold (int, optional): Minimum token count. Defaults to None
            (3 for IU X-ray, 10 for MIMIC-CXR, as R2Gen).
        clean_mode (str): ``'r2gen'`` or ``'fixed'``, see
            :class:`R2GenTokenizer`. Defaults to 'r2gen'.
    """
    if vocab_file:
        with open(vocab_file) as f:
            return list(json.load(f))
    if ann_file is None:
        raise R2GenConversionError(
            'give --ann-file (the annotation.json the model was trained on) '
            'or --vocab-file (JSON list of tokens in id order 1..V): R2Gen '
            'checkpoints do not contain their vocabulary')
    from mmext.models.multimodal.r2gen.tokenizer import R2GenTokenizer
    if threshold is None:
        threshold = 3 if dataset == 'iu_xray' else 10
    return R2GenTokenizer(
        ann_file=ann_file,
        threshold=threshold,
        dataset=dataset,
        clean_mode=clean_mode).vocab


def check_r2gen_config(state_dict, config, vocab, head_args=None):
    """Build the config's model and check every key and shape of
    ``state_dict`` against it; load it strictly.

    Raises:
        R2GenConversionError: Naming the counts, the first bad key and the
            checkpoint's head arguments to put in the config.
    """
    from mmengine.config import Config

    from mmext.registry import MODELS
    from mmext.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    model_cfg = cfg.model.copy()
    model_cfg.tokenizer = dict(model_cfg.tokenizer, vocab=list(vocab))
    backbone = model_cfg.backbone
    while backbone.get('type') == 'PartialFreeze':
        backbone = backbone.backbone
    backbone.pop('init_cfg', None)  # the converted weights replace it
    model = MODELS.build(model_cfg)
    res = compare_state_dict(model, state_dict)
    missing, unexpected, mismatched = (res['missing'], res['unexpected'],
                                       res['mismatched'])
    if missing or unexpected or mismatched:
        first = (mismatched + missing + unexpected)[0]
        raise R2GenConversionError(
            f'{config}: {len(missing)} missing, {len(unexpected)} unexpected '
            f'and {len(mismatched)} mismatched keys (first: {first}); the '
            f'checkpoint has head {head_args}: set model.head (and the '
            'backbone) to match')
    model.load_state_dict(state_dict, strict=True)
    return model


def convert_r2gen_checkpoint(src, dst, vocab, config=None):
    """Convert the R2Gen checkpoint ``src`` and save it to ``dst``.

    Args:
        src (str): ``model_iu_xray.pth`` etc., loaded with
            :func:`mmext.utils.safe_torch_load`.
        dst (str): Output: ``dict(state_dict, meta)`` with the vocabulary
            in ``meta['dataset_meta']['vocab']``.
        vocab (list[str]): See :func:`load_r2gen_vocab`; its size must be
            the checkpoint's.
        config (str | Config, optional): An mmext config whose model must
            take the weights strictly. Defaults to None (not checked).

    Returns:
        dict: The converted state dict.
    """
    from mmext.utils import safe_torch_load
    ckpt = safe_torch_load(src, map_location='cpu')
    state_dict = unwrap_state_dict(ckpt, ('state_dict', ))
    if not isinstance(state_dict, dict):
        raise R2GenConversionError(
            f"{src}: not a state dict or a checkpoint with 'state_dict'")
    size = r2gen_vocab_size(state_dict)
    if size != len(vocab):
        raise R2GenConversionError(
            f'{src}: the checkpoint has a vocabulary of {size} tokens '
            f'({size + 1} rows in encoder_decoder.logit) but the tokenizer '
            f'has {len(vocab)}; use the annotation.json, --dataset and '
            '--threshold the model was trained with')
    converted = convert_r2gen_state_dict(state_dict)
    head_args = r2gen_head_args(state_dict)
    if config is not None:
        check_r2gen_config(converted, config, vocab, head_args)
    meta = dict(
        dataset_meta=dict(vocab=list(vocab)),
        converted_from=f'R2Gen {src}',
        r2gen_epoch=ckpt.get('epoch') if isinstance(ckpt, dict) else None,
        head_args=head_args)
    torch.save(dict(state_dict=converted, meta=meta), dst)
    return converted
