# Copyright (c) mmext contributors. All rights reserved.
"""Per-family inputs and parts for :func:`mmext.analysis.model_complexity`.

Each family function takes ``(model, cfg, input_shape, options)`` and
returns a :class:`~mmext.analysis.complexity.Complexity`; a model type
without an entry in :data:`FAMILIES` is counted by :func:`generic` (one
image through ``forward(x, mode='tensor')``, parts = top-level modules).
"""
import torch

from mmext.utils.config import walk_config
from .complexity import (Complexity, Part, _params, config_input_size,
                         count_flops)

__all__ = ['FAMILIES', 'generic', 'vilbert', 'vilbert_inputs', 'r2gen', 'butd']


def _from_pipeline(cfg, type_name, key, default):
    """``key`` of the first ``type_name`` transform in the config."""
    found = []
    walk_config(
        cfg._cfg_dict, lambda d: found.append(d[key])
        if d.get('type') == type_name and key in d else None)
    return found[0] if found else default


def _shape(input_shape, cfg):
    """``input_shape`` or (3, H, W) of the config's test pipeline."""
    return tuple(input_shape or (3, *config_input_size(cfg)))


def _rows(by_module, model_params, prefix, names, seen):
    """One part per child module name (``(label, [names], note)``)."""
    rows = []
    for label, children, note in names:
        mods = [model_params.get(c) for c in children]
        mods = [m for m in mods if m is not None]
        if not mods:
            continue
        flops = sum(by_module.get(prefix + c, 0) for c in children)
        rows.append(Part(label, flops, _params(*mods, seen=seen), note))
    return rows


def generic(model, cfg, input_shape, options):
    """One (1, 3, H, W) image through ``model(x, mode='tensor')``; one row
    per top-level module (backbone / neck / head for an ImageClassifier)."""
    shape = _shape(input_shape, cfg)
    total, by = count_flops(
        lambda x: model(x, mode='tensor'), [torch.randn(1, *shape)], m=model)
    children = dict(model.named_children())
    children.pop('data_preprocessor', None)
    names = [(n, [n], '') for n in children]
    parts = _rows(by, children, 'm.', names, set())
    return Complexity(
        type(model).__name__, f'one image {shape}', parts, total, 0)


# ------------------------------------------------------------------ ViLBERT
def vilbert_inputs(vil, input_shape, text_len, num_regions, batch=1):
    """Random ViLBERT inputs for ``batch`` samples (text of ``text_len``
    tokens, an image or ``num_regions`` regions)."""
    g = torch.Generator().manual_seed(0)
    vocab = vil.bert.config.vocab_size
    ids = torch.randint(1, vocab, (batch, text_len), generator=g)
    inputs = dict(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        token_type_ids=torch.zeros_like(ids))
    if vil.regions:
        n, f = num_regions, vil.visual.feature_dims
        inputs.update(
            region_feats=torch.rand(batch, n, f, generator=g),
            region_locs=torch.rand(batch, n, 5, generator=g),
            region_mask=torch.ones(batch, n, dtype=torch.long))
    else:
        inputs['img'] = torch.randn(batch, *input_shape, generator=g)
    return inputs


def vilbert(model, cfg, input_shape, options):
    """ViLBERT / ViLBERTClassifier: text stream, vision stream,
    co-attention blocks, poolers and the task head, for one caption pair
    (``forward(inputs, mode='tensor')``)."""
    vil = getattr(model, 'vilbert', model)
    shape = _shape(input_shape, cfg)
    t = options.get('text_len') or _from_pipeline(cfg, 'TokenizeCaption',
                                                  'max_length', 36)
    n = options.get('num_regions') or _from_pipeline(cfg, 'LoadRegionFeatures',
                                                     'max_regions', 36)
    inputs = vilbert_inputs(vil, shape, t, n)
    total, by = count_flops(
        lambda d: model(d, mode='tensor'), [inputs], m=model)
    prefix = 'm.vilbert.' if vil is not model else 'm.'
    mods = dict(vil.named_children())
    vision = f'{n} regions + global' if vil.regions else f'image {shape}'
    names = [
        ('text stream (BERT)', ['bert'], f'{t} tokens'),
        ('vision stream', ['visual'], vision),
        ('co-attention', ['coattn'], f'{len(vil.coattn)} block(s)'),
        ('poolers', ['text_pool', 'vision_pool'], vil.pooler),
        ('pretraining heads', ['mlm_head', 'itm_head', 'region_head'],
         'loss mode only (not in the tensor path)'),
    ]
    seen = set()
    parts = _rows(by, mods, prefix, names, seen)
    if vil is not model:
        parts += _rows(by, dict(model.named_children()), 'm.',
                       [('classifier head', ['head'], model.task)], seen)
    mode = 'regions' if vil.regions else 'patches'
    return Complexity(
        type(model).__name__,
        f'one caption pair ({mode}): {t} tokens, {vision}', parts, total, 0)


# ------------------------------------------------------------------ R2Gen
def _decode(head, hidden, beams, steps):
    """``steps`` incremental decoding steps for ``beams`` rows (the best
    token fed back: the cost does not depend on which token)."""
    state = head.decode_state(hidden, beams)
    if not steps:  # the per-report set-up: encoder keys / values, memory
        return [t for kv in state.src_kv for t in kv] + [state.memory]
    prefix = torch.zeros(hidden.size(0) * beams, 1, dtype=torch.long)
    for _ in range(steps):
        logprobs = state.step(prefix)
        prefix = torch.cat([prefix, logprobs.argmax(-1, keepdim=True)], 1)
    return logprobs


def r2gen(model, cfg, input_shape, options):
    """R2GenReportGenerator for one study: visual extractor over the views,
    encoder, one decoding step and a full report (``max_steps`` tokens for
    every beam, no early exit: an upper bound)."""
    shape = _shape(input_shape, cfg)
    # IU X-ray studies are frontal + lateral, R2Gen's MIMIC-CXR one view
    views = options.get('num_views') or (2 if _from_pipeline(
        cfg, 'IUXray', 'type', None) else 1)
    steps = options.get('max_steps') or model.max_seq_length
    dec = dict(model.decode_cfg)
    beams = 1 if dec.get('strategy', 'beam') == 'greedy' else dec.get(
        'beam_size', 3)
    x = torch.randn(1, views, *shape)
    head, seen = model.head, set()
    f_ext, by = count_flops(
        model.extract_feat, [x], backbone=model.backbone, neck=model.neck)
    with torch.no_grad():
        tokens = model.extract_feat(x)
        hidden = head.encode(tokens)
    f_enc, _ = count_flops(head.encode, [tokens], head=head)
    f_init, _ = count_flops(
        lambda h: _decode(head, h, beams, 0), [hidden], head=head)
    f_one, _ = count_flops(
        lambda h: _decode(head, h, beams, 1), [hidden], head=head)
    f_all, _ = count_flops(
        lambda h: _decode(head, h, beams, steps), [hidden], head=head)
    n_tok = tokens.size(1)
    parts = [
        Part('backbone', by.get('backbone', 0),
             _params(model.backbone, seen=seen), f'{views} view(s) {shape}'),
        Part('neck', by.get('neck', 0), _params(model.neck, seen=seen),
             f'{n_tok} visual tokens'),
        Part('encoder', f_enc,
             _params(head.att_embed, head.model.encoder, seen=seen)),
        Part(
            'decoder: one step',
            f_one - f_init,
            None,
            f'first token, {beams} beam(s)',
            in_total=False),
        Part(
            'decoder: full report', f_all, _params(head, seen=seen),
            f'{steps} tokens x {beams} beam(s), incl. memory of the '
            'encoder states'),
    ]
    total = f_ext + f_enc + f_all
    return Complexity(
        type(model).__name__,
        f'one study: {views} view(s) {shape}, {steps} tokens, beam {beams}',
        parts, total, 0, [
            'a full report runs every step for every beam (early exit and '
            'finished beams make a real report cheaper)'
        ])


# ------------------------------------------------------------------ BUTD
def butd(model, cfg, input_shape, options):
    """BUTDFasterRCNN for one image: backbone (res1-res4), RPN head, and
    the box head (res5 + predictors) per ROI times ``post_nms_top_n``
    ROIs; proposal decoding and NMS are not counted."""
    shape = _shape(input_shape, cfg)
    x = torch.randn(1, *shape)
    f_bb, _ = count_flops(model.backbone, [x])
    with torch.no_grad():
        feats = model.backbone(x)
    f_rpn, _ = count_flops(model.rpn_head, [feats])
    roi = model.roi_head
    pooled_in = torch.randn(1, feats.size(1), roi.roi_size, roi.roi_size)
    f_res5, _ = count_flops(roi.layer4, [pooled_in])
    f_pred, _ = count_flops(
        roi.predict, [torch.randn(1, roi.out_channels)], roi=roi)
    r = model.test_cfg['post_nms_top_n']
    seen = set()
    preds = [
        roi.cls_score, roi.bbox_pred, roi.cls_embedding, roi.fc_attr,
        roi.attr_score
    ]
    parts = [
        Part('backbone (res1-res4)', f_bb, _params(model.backbone, seen=seen),
             f'image {shape}'),
        Part('RPN head', f_rpn, _params(model.rpn_head, seen=seen),
             f'C4 map {tuple(feats.shape[1:])}'),
        Part('box head res5', f_res5 * r, _params(roi.layer4, seen=seen),
             f'{r} ROIs x {f_res5:,} per ROI'),
        Part('box predictors', f_pred * r, _params(*preds, seen=seen),
             f'{r} ROIs x {f_pred:,} per ROI'),
    ]
    total = f_bb + f_rpn + (f_res5 + f_pred) * r
    return Complexity(
        type(model).__name__, f'one image {shape} (test_cfg.post_nms_top_n'
        f' = {r} ROIs)', parts, total, 0,
        ['ROI pooling, proposal decoding and NMS are not counted'])


FAMILIES = dict(
    ViLBERT=vilbert,
    ViLBERTClassifier=vilbert,
    R2GenReportGenerator=r2gen,
    BUTDFasterRCNN=butd)
