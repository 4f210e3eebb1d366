# Copyright (c) mmext contributors. All rights reserved.
"""One tiny configuration per registered mmext model (timm-style table).

``tests/test_models/test_all_models.py`` enumerates ``mmext.registry.MODELS``
and runs every entry through build, forward, backward, a ``state_dict``
round trip, eval-mode determinism and CPU bf16 autocast; a registration
without a row in :data:`TINY_MODELS` fails that test. Each row gives the
config (``bert_dir`` is filled in for models that read a BERT folder), the
inputs and how to run the model to tensors.
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, Tuple

import torch

from .vilbert import TINY_VIT, fixed_batch

__all__ = ['TinyCase', 'TINY_MODELS', 'build_tiny']

TINY_ARCH = dict(
    embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=48)
TINY_TRAR = dict(
    type='TRARViT',
    arch=TINY_ARCH,
    img_size=32,
    patch_size=8,
    orders=(0, 1, 2))
TINY_R2GEN_HEAD = dict(
    type='R2GenHead',
    vocab_size=12,
    in_channels=32,
    d_model=16,
    d_ff=16,
    num_layers=1,
    num_heads=2,
    rm_num_heads=2,
    rm_d_model=16,
    dropout=0.1,
    drop_prob_lm=0.1)
TINY_VILBERT = dict(
    type='ViLBERT',
    text=dict(folder='{bert_dir}'),
    visual=dict(type='PatchVisualStream', backbone=TINY_VIT, embed_dims=32),
    coattention=dict(text_ids=[1], vision_ids=[1], bi_dims=16, num_heads=2),
    pooled_dims=16)
TINY_BUTD = dict(
    type='BUTDFasterRCNN',
    stage_blocks=(1, 1, 1, 1),
    base_channels=4,
    rpn_channels=8,
    num_classes=6,
    num_attributes=4,
    attr_embed_dims=3,
    attr_hidden=5,
    test_cfg=dict(target_size=64, max_size=100, post_nms_top_n=30))


@dataclass
class TinyCase:
    """How to build and run one registered model small.

    Args:
        cfg (dict): Model config; the string ``'{bert_dir}'`` anywhere in it
            is replaced by a generated BERT folder.
        inputs (callable): ``seed -> inputs`` (fixed for a seed).
        run (callable): ``(model, inputs) -> tuple of tensors`` whose
            float sum is back-propagated.
        unused (tuple[str]): Parameter-name prefixes ``run`` does not reach
            (say why next to them); every other trainable parameter must
            get a gradient. Defaults to ().
        no_backward (tuple[int]): Indices of ``run``'s outputs left out of
            the backward pass (say why). Defaults to ().
    """
    cfg: dict
    inputs: Callable[[int], object]
    run: Callable[[torch.nn.Module, object], Tuple[torch.Tensor, ...]]
    unused: Tuple[str, ...] = field(default_factory=tuple)
    no_backward: Tuple[int, ...] = field(default_factory=tuple)


def _images(shape):
    return lambda seed: torch.randn(
        *shape, generator=torch.Generator().manual_seed(seed))


def _run_stream(model, inputs):
    x, mask, ctx = model.embed(inputs)
    for i in range(model.num_layers):
        x = model.layer(i, x, mask, ctx)
    return (x, )


def _regions(seed):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(2, 5)
    mask[1, -2:] = 0
    return dict(
        feats=torch.rand(2, 5, 24, generator=g),
        locs=torch.rand(2, 5, 5, generator=g),
        mask=mask)


def _report_tokens(seed):
    g = torch.Generator().manual_seed(seed)
    return dict(
        img=torch.randn(2, 2, 3, 32, 32, generator=g),
        tokens=torch.tensor([[0, 3, 10, 4, 1, 0], [0, 8, 9, 1, 0, 0]]))


def _run_generator(model, inputs):
    from mmpretrain.structures import DataSample
    samples = []
    for row in inputs['tokens']:
        s = DataSample()
        s.set_field(
            row[:int((row > 0).sum()) + 2], 'gt_tokens', field_type='data')
        samples.append(s)
    return (model(inputs['img'], samples, mode='tensor'), )


def _run_vilbert(model, inputs):
    feats = model(inputs)
    losses = model.loss(inputs)
    return (feats['fused'], feats['text'], feats['vision'],
            sum(losses.values()))


def _run_butd(model, img):
    feats = model.backbone(img)
    logits, deltas = model.rpn_head(feats)
    proposals = torch.tensor([[0., 0, 60, 40], [10, 5, 90, 60],
                              [30, 20, 95, 63]])
    out = model.forward_roi(feats, proposals, 1.0, (64, 96))
    return (logits[0], deltas[0], out['features'], out['cls_prob'],
            out['attr_prob'], out['cls_boxes'])


def _run_preprocessor(model, inputs):
    out = model(inputs)['inputs']
    if isinstance(out, dict):
        return tuple(v for v in out.values() if v.is_floating_point())
    return (out, )


TINY_MODELS: Dict[str, TinyCase] = {
    'TRARViT':
    TinyCase(
        cfg=TINY_TRAR, inputs=_images((2, 3, 32, 32)), run=lambda m, x: m(x)),
    'PartialFreeze':
    TinyCase(
        cfg=dict(type='PartialFreeze', frozen_stages=1, backbone=TINY_TRAR),
        inputs=_images((2, 3, 32, 32)),
        run=lambda m, x: m(x)),
    'VisualTokenNeck':
    TinyCase(
        cfg=dict(
            type='VisualTokenNeck',
            in_channels=32,
            out_channels=16,
            tokens='both'),
        inputs=_images((4, 1 + 16, 32)),
        run=lambda m, x: m((x, ), num_views=2)),
    'PatchVisualStream':
    TinyCase(
        cfg=dict(
            type='PatchVisualStream',
            backbone=TINY_VIT,
            embed_dims=32,
            num_extra_layers=1,
            extra_layer=dict(num_heads=2, ffn_dims=32)),
        inputs=_images((2, 3, 32, 32)),
        run=_run_stream),
    'RegionVisualStream':
    TinyCase(
        cfg=dict(
            type='RegionVisualStream',
            feature_dims=24,
            embed_dims=16,
            num_layers=1,
            num_heads=2,
            ffn_dims=16),
        inputs=_regions,
        run=_run_stream),
    'R2GenHead':
    TinyCase(
        cfg=TINY_R2GEN_HEAD,
        inputs=lambda seed: dict(
            feats=_images((2, 6, 32))(seed),
            tokens=torch.tensor([[0, 3, 10, 4, 1, 0], [0, 8, 9, 1, 0, 0]])),
        run=lambda m, x: (m(x['feats'], x['tokens']), )),
    'R2GenReportGenerator':
    TinyCase(
        cfg=dict(
            type='R2GenReportGenerator',
            backbone=dict(
                type='ResNet',
                depth=18,
                stem_channels=8,
                base_channels=4,
                out_indices=(3, )),
            neck=dict(type='VisualTokenNeck', in_channels=32),
            head=TINY_R2GEN_HEAD,
            max_seq_length=8,
            tokenizer=dict(
                type='R2GenTokenizer',
                vocab=[
                    '.', '<unk>', 'heart', 'normal', 'size', 'no', 'effusion',
                    'lungs', 'clear', 'is', 'in'
                ])),
        inputs=_report_tokens,
        run=_run_generator),
    'ReportDataPreprocessor':
    TinyCase(
        cfg=dict(
            type='ReportDataPreprocessor',
            mean=[120] * 3,
            std=[60] * 3,
            to_rgb=True),
        inputs=lambda seed: dict(inputs=[_images((2, 3, 8, 8))(seed)] * 2),
        run=_run_preprocessor),
    'ViLBERTDataPreprocessor':
    TinyCase(
        cfg=dict(type='ViLBERTDataPreprocessor', mean=[120] * 3, std=[60] * 3),
        inputs=lambda seed: dict(
            inputs=dict(
                img=_images((2, 3, 8, 8))(seed),
                img_masked=_images((2, 3, 8, 8))(seed + 1),
                patch_mask=torch.tensor([[True, False, False, True]] * 2))),
        run=_run_preprocessor),
    'ViLBERT':
    TinyCase(
        cfg=TINY_VILBERT,
        inputs=lambda seed: fixed_batch(seed=seed),
        run=_run_vilbert),
    'ViLBERTClassifier':
    TinyCase(
        cfg=dict(
            type='ViLBERTClassifier',
            vilbert=TINY_VILBERT,
            task='multiclass',
            num_classes=3,
            hidden_dims=8),
        inputs=lambda seed: fixed_batch(seed=seed),
        run=lambda m, x: (m(x), )),
    'BUTDFasterRCNN':
    TinyCase(
        cfg=TINY_BUTD,
        inputs=_images((1, 3, 64, 96)),
        run=_run_butd,
        # inference-only detector: clip_boxes clamps slices of the decoded
        # boxes in place, so cls_boxes (and bbox_pred) get no gradient
        no_backward=(5, ),
        unused=('roi_head.bbox_pred', )),
}


def _fill(obj, bert_dir):
    if isinstance(obj, dict):
        return {k: _fill(v, bert_dir) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_fill(v, bert_dir) for v in obj)
    if obj == '{bert_dir}':
        return str(bert_dir)
    return obj


def build_tiny(name, bert_dir=None, seed=0):
    """Build the :data:`TINY_MODELS` row ``name`` with ``torch`` seeded.

    Args:
        name (str): Registered model name.
        bert_dir (str | Path, optional): A BERT folder
            (:func:`mmext.testing.bert.make_bert_folder`) for rows that need
            one. Defaults to None.
        seed (int): Seed for the random initialisation. Defaults to 0.

    Returns:
        torch.nn.Module: The model (train mode).
    """
    from mmengine.registry import DefaultScope

    from mmext.registry import MODELS
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmext'):
        return MODELS.build(_fill(TINY_MODELS[name].cfg, bert_dir))
