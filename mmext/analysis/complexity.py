# Copyright (c) mmext contributors. All rights reserved.
"""FLOPs and parameters of a config's whole model, part by part.

mmpretrain's ``tools/analysis_tools/get_flops.py`` replaces ``forward`` by
``extract_feat`` and feeds one ``(1, 3, H, W)`` tensor to
``mmengine.analysis.get_model_complexity_info``: it counts the backbone (and
neck) of an image classifier only, and models whose input is not one image
break (ViLBERT reads text + image / regions; R2Gen encodes views and then
generates; BUTD runs a detector). It also needs every file the model builds
from (R2Gen's tokenizer reads ``annotation.json``). Here each family states
its inputs and its parts (ViLBERT: both streams, co-attention, poolers,
head; R2Gen: extractor, encoder, one decoding step and a full report; BUTD:
backbone, RPN and box head per image), counted with mmengine's
:class:`~mmengine.analysis.FlopAnalyzer`, and the model builds without data
or weight files (:func:`analysis_config`).

FLOPs follow mmengine / fvcore: one multiply-add counts 1, element-wise
operations, softmax and NMS are not counted.
"""
import copy
import os.path as osp
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.config import Config

from mmext.utils.config import walk_config

__all__ = [
    'Part', 'Complexity', 'analysis_config', 'build_for_analysis',
    'count_flops', 'model_complexity', 'sdpa_flop_jit', 'config_input_size',
    'PLACEHOLDER_VOCAB'
]

#: vocabulary sizes of R2Gen's released checkpoints (761 / 4336 embedding
#: rows: zhjohnchan/R2Gen issues 5 and 3), used when annotation.json is
#: absent: the logit layer's cost depends on it
PLACEHOLDER_VOCAB = dict(iu_xray=760, mimic_cxr=4335)
_TINY_BERT_VOCAB = 128


@dataclass
class Part:
    """One row: ``flops`` per sample (image, study, caption pair);
    ``params`` None when the row shares another row's parameters;
    ``in_total`` False for a row that restates others (R2Gen's one step)."""
    name: str
    flops: int
    params: int = None
    note: str = ''
    in_total: bool = True


@dataclass
class Complexity:
    """Rows, totals and what the numbers assume."""
    model: str
    inputs: str
    parts: list
    total_flops: int
    total_params: int
    notes: list = field(default_factory=list)

    def table(self):
        """The rows as a fixed-width text table."""
        head = ('part', 'FLOPs', 'params', 'note')
        rows = [(p.name, _fmt(p.flops),
                 '-' if p.params is None else _fmt(p.params), p.note)
                for p in self.parts]
        rows.append(
            ('total', _fmt(self.total_flops), _fmt(self.total_params), ''))
        widths = [max(len(r[i]) for r in [head] + rows) for i in range(3)]
        line = '  '.join(w * '-' for w in widths) + '  ----'
        out = [f'model: {self.model}', f'inputs: {self.inputs}', line]
        for i, r in enumerate([head] + rows):
            out.append('  '.join(
                c.ljust(w) if j == 0 else c.rjust(w)
                for j, (c, w) in enumerate(zip(r, widths))) + '  ' + r[3])
            if i == 0 or i == len(rows) - 1:
                out.append(line)
        return '\n'.join(out + [f'note: {n}' for n in self.notes])


def _fmt(n):
    for unit, size in (('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(n) >= size:
            return f'{n / size:.3f}{unit}'
    return str(int(n))


# ------------------------------------------------------------------ build
def _pipeline(cfg):
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset['dataset']  # dataset wrappers
    return dataset.get('pipeline', [])


def _hw(size):
    if isinstance(size, int):
        return (size, size)
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return (int(size[1]), int(size[0]))  # mmcv scales are (w, h)
    return None


def config_input_size(cfg):
    """The ``(h, w)`` the config's test pipeline feeds the model.

    The last ``CenterCrop`` / ``Resize`` (``scale`` or ``crop_size``) of the
    test pipeline; else a detector's ``test_cfg.target_size`` (square);
    else the backbone's ``img_size``; else 224.

    Args:
        cfg (Config): A loaded config.

    Returns:
        tuple[int, int]: Height and width.
    """
    size = None
    for t in _pipeline(cfg):
        kind = t.get('type', '')
        if kind in ('CenterCrop', 'RandomCrop'):
            size = _hw(t.get('crop_size')) or size
        elif kind == 'Resize':
            size = _hw(t.get('scale')) or size
    test_cfg = cfg.get('model', {}).get('test_cfg') or {}
    if size is None and isinstance(test_cfg.get('target_size'), int):
        size = _hw(test_cfg['target_size'])  # detectors: shorter side
    if size is None:
        backbone = cfg.get('model', {}).get('backbone', {})
        backbone = backbone.get('backbone', backbone)  # PartialFreeze
        size = _hw(backbone.get('img_size')) if backbone else None
    return size or (224, 224)


def analysis_config(cfg, vocab_size=None):
    """A copy of ``cfg`` whose model builds with no data or weight file.

    ``init_cfg=dict(type='Pretrained')`` and ``load_from`` are dropped; an
    R2Gen tokenizer without ``vocab`` whose ``annotation.json`` is absent
    gets a placeholder vocabulary (``vocab_size`` or
    :data:`PLACEHOLDER_VOCAB`); a ViLBERT text stream reads only the
    folder's ``config.json`` and, when the folder is absent, uses
    bert-base-uncased's shape (folders named ``bert-base*``) or the tests'
    tiny BERT.

    Args:
        cfg (str | Config): Config file or loaded config.
        vocab_size (int, optional): R2Gen vocabulary size to use even when
            the annotation file exists. Defaults to None.

    Returns:
        tuple[Config, list[str]]: The config and notes on every placeholder.
    """
    cfg = Config.fromfile(cfg) if isinstance(cfg, str) else copy.deepcopy(cfg)
    cfg.load_from = None
    notes = []

    def patch(d):
        init = d.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            d['init_cfg'] = None
        if d.get('type') == 'R2GenTokenizer' and d.get('vocab') is None:
            _patch_tokenizer(d, vocab_size, notes)
        if isinstance(d.get('text'), dict) and 'folder' in d['text']:
            _patch_bert(d['text'], notes)

    walk_config(cfg._cfg_dict['model'], patch)
    return cfg, notes


def _patch_tokenizer(tok, vocab_size, notes):
    ann = tok.get('ann_file')
    if ann and tok.get('data_root') and not osp.isabs(ann):
        ann = osp.join(tok['data_root'], ann)
    if vocab_size is None and ann and osp.isfile(ann):
        return
    size = vocab_size or PLACEHOLDER_VOCAB[tok.get('dataset', 'iu_xray')]
    tok['vocab'] = ['<unk>'] + [f'w{i}' for i in range(1, size)]
    why = 'given' if vocab_size else f'{ann} absent; R2Gen release size'
    notes.append(f'R2Gen vocabulary: {size} placeholder tokens ({why})')


def _patch_bert(text, notes):
    from mmext.models.multimodal.vilbert.text_stream import find_bert_folder
    text['load_weights'] = False
    try:
        find_bert_folder(text['folder'])
        return
    except FileNotFoundError:
        pass
    folder = text.pop('folder')
    if osp.basename(str(folder).rstrip('/')).startswith('bert-base'):
        text['config'] = dict(text.get('config') or {})  # BertConfig()
        shape = 'bert-base-uncased (BertConfig defaults)'
    else:
        from mmext.models.multimodal.vilbert.text_stream import TINY_BERT
        text['config'] = dict(
            TINY_BERT,
            vocab_size=_TINY_BERT_VOCAB,
            **(text.get('config') or {}))
        shape = f'the tests\' tiny BERT ({_TINY_BERT_VOCAB} tokens)'
    notes.append(f'BERT folder {folder} absent: text stream built as {shape}')


def build_for_analysis(cfg, vocab_size=None):
    """``mmpretrain.apis.get_model`` on :func:`analysis_config` (eval
    mode); returns ``(model, config, notes)``."""
    from mmpretrain.apis import get_model
    cfg, notes = analysis_config(cfg, vocab_size)
    model = get_model(cfg)
    model.eval()
    return model, cfg, notes


# ------------------------------------------------------------------ count
def sdpa_flop_jit(inputs, outputs):
    """FLOPs of ``aten::scaled_dot_product_attention``: ``q k^T`` and
    ``attn v``, one multiply-add each (fvcore / mmengine convention).

    mmengine's FlopAnalyzer has no handle for it and skips it, so models
    using PyTorch's fused attention (mmpretrain's ViT on torch >= 2) count
    low: ViT-B/16 at 224 px gives 16.87G instead of mmpretrain's published
    17.58G. With this handle the published number is reproduced exactly.
    """
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = int(np.prod(q[:-2]))
    length, source = q[-2], k[-2]
    return batch * length * source * (q[-1] + v[-1])


class _Call(nn.Module):
    """Traces ``fn(*inputs)`` with ``modules`` named as given (the names of
    :meth:`FlopAnalyzer.by_module`)."""

    def __init__(self, fn, **modules):
        super().__init__()
        self.fn = fn
        for name, module in modules.items():
            self.add_module(name, module)

    def forward(self, *inputs):
        return self.fn(*inputs)


def count_flops(fn, inputs, **modules):
    """FLOPs of ``fn(*inputs)`` (a module, or a function using
    ``modules``): ``(total, Counter of FLOPs by module name)``."""
    module = fn if isinstance(fn, nn.Module) and not modules else _Call(
        fn, **modules)
    analyzer = FlopAnalyzer(module, tuple(inputs))
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    with torch.no_grad():
        total = analyzer.total()
    return total, analyzer.by_module()


def _params(*modules, seen=None):
    seen = set() if seen is None else seen
    n = 0
    for m in modules:
        for p in m.parameters() if m is not None else ():
            if id(p) not in seen:
                seen.add(id(p))
                n += p.numel()
    return n


def model_complexity(cfg, input_shape=None, **options):
    """FLOPs and parameters of a config's model, per part.

    Args:
        cfg (str | Config): The config (no data or weights needed).
        input_shape (tuple, optional): ``(3, H, W)`` of one image (view,
            patches-mode image). Defaults to the config's test size
            (:func:`config_input_size`; BUTD: ``test_cfg.target_size``).
        **options: ``text_len`` (ViLBERT tokens; default: the pipeline's
            ``max_length``), ``num_regions`` (regions mode; default: the
            pipeline's ``max_regions``), ``num_views`` (R2Gen; IU X-ray 2,
            else 1), ``max_steps`` (R2Gen tokens of a full report; default
            ``max_seq_length``), ``vocab_size`` (R2Gen), ``model`` (an
            already built model for ``cfg``).

    Returns:
        Complexity: Rows (``.parts``), totals and notes; ``.table()``.
    """
    from .complexity_families import FAMILIES, generic
    model = options.pop('model', None)
    if model is None:
        model, cfg, notes = build_for_analysis(cfg, options.get('vocab_size'))
    else:
        cfg = Config.fromfile(cfg) if isinstance(cfg, str) else cfg
        notes = []
    name = type(model).__name__
    family = FAMILIES.get(name, generic)
    result = family(model, cfg, input_shape, options)
    result.notes = notes + result.notes
    known = sum(p.flops for p in result.parts if p.in_total)
    if result.total_flops != known:
        result.parts.append(
            Part('other', result.total_flops - known, None,
                 'outside the named parts'))
    result.total_params = _params(model)
    return result
