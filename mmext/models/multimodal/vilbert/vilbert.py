# Copyright (c) mmext contributors. All rights reserved.
"""ViLBERT: two streams joined by co-attention, with pre-training losses."""
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel

from mmext.models.utils.freeze import (STAGE_RULES, freeze_module,
                                       register_stage_rule)
from mmext.registry import MODELS
from .coattention import CoAttentionLayer, bert_init_
from .heads import (ITMHead, MLMHead, RegionHead, info_nce, region_kl_loss,
                    select_tokens)
from .schedule import resolve_schedule, schedule_steps
from .text_stream import build_bert
from .visual_stream import RegionVisualStream, run_bert_layer

__all__ = ['ViLBERT']

_LOSSES = dict(mlm=1.0, itm=1.0, mim=1.0, mrm=1.0)


def _register_bert_rule():
    from transformers import BertModel
    if BertModel not in STAGE_RULES:
        register_stage_rule(BertModel)(
            lambda m: (['embeddings'], [[f'encoder.layer.{i}']
                                        for i in range(len(m.encoder.layer))]))


@MODELS.register_module()
class ViLBERT(BaseModel):
    """ViLBERT (Lu et al., "ViLBERT: Pretraining Task-Agnostic Visiolinguistic
    Representations for Vision-and-Language Tasks", NeurIPS 2019).

    A BERT text stream (``transformers.BertModel`` from a local Hugging Face
    folder) and a visual stream (:class:`PatchVisualStream` over any
    backbone, or :class:`RegionVisualStream` over detector regions) are run
    layer by layer; :class:`CoAttentionLayer` blocks sit between them where
    the schedule says (:func:`resolve_schedule`: a preset or two id lists,
    "after i layers"; none at all is the two-stream baseline).
    vilbert-multi-task fixes the streams (regions only) and the thesis code
    (cesipy/bsc-code) fixes ViT-B/16, 12 layers and a pre-LN block with a
    wrong score scale; here all of them are config choices.

    **Outputs** (``forward(inputs, mode='tensor')`` = :meth:`extract_feat`):
    a dict with ``text`` (B, T, Dt) and ``vision`` (B, 1 + N, Dv) final
    sequences (first token = CLS / global), ``text_mask`` / ``vision_mask``
    ((B, T) / (B, 1 + N) or None), ``pooled_text`` / ``pooled_vision``
    ((B, pooled_dims): ``pooler='vilbert'`` first token -> Linear -> ReLU,
    ``'cls'`` the raw first token) and ``fused`` ((B, :attr:`fused_dims`),
    ``fusion`` in 'mul' / 'sum' (ViLBERT) / 'concat' (thesis) / 'text').
    A task head reads ``fused`` (or the pooled pair).

    **Per-layer representations** (``return_layers=True``, same forward):
    ``text_layers`` (list of Lt tensors, the text sequence after each text
    layer), ``vision_layers`` (Lv tensors, after each vision layer),
    ``coattn_layers`` (one dict per block: ``text`` / ``vision`` sequences
    after it, ``attention``: its maps ``text_to_vision`` (B, heads, T,
    1 + N) and ``vision_to_text`` (B, heads, 1 + N, T), ``text_id`` /
    ``vision_id``), ``steps`` (execution order,
    ``[('text', i) | ('vision', j) | ('coattn', k), ...]``) and
    ``embeddings`` (``text`` / ``vision`` inputs of the first layers).
    A layer's state is taken before any co-attention that follows it.

    **Losses** (``mode='loss'``), each on when its weight in ``losses`` is
    > 0: ``mlm`` (tied head, labels -100 ignored), ``itm`` (label 1 =
    matched), ``mim`` (patches mode: InfoNCE between the strong masked view
    and the weak view on the selected vision tokens; a second forward, the
    others share the first), ``mrm`` (regions mode: KL to the detector's
    class distribution over masked regions).

    Args:
        text (dict): ``folder`` (Hugging Face BERT folder, see
            :func:`build_bert`) and/or ``config`` (``BertConfig`` kwargs),
            ``frozen_stages`` / ``frozen_patterns`` (as ``PartialFreeze``:
            stem = embeddings, stages = BERT layers).
        visual (dict): ``PatchVisualStream`` or ``RegionVisualStream``
            config (freeze a backbone by wrapping it in ``PartialFreeze``).
        coattention (dict): ``preset`` or ``text_ids`` / ``vision_ids``,
            plus :class:`CoAttentionLayer` arguments (``bi_dims``,
            ``num_heads``, ``norm``, ...). Defaults to preset 'none'.
        pooler (str): 'vilbert' or 'cls'. Defaults to 'vilbert'.
        pooled_dims (int): Pooler width for 'vilbert'. Defaults to 1024.
        fusion (str): 'mul', 'sum', 'concat' or 'text'. Defaults to 'mul'.
        losses (dict): Loss name -> weight (0 / None = off). Defaults to
            mlm, itm, mim, mrm at 1 (mim only for patches, mrm only for
            regions).
        mim (dict): ``temperature`` (0.1), ``tokens`` ('unmasked' |
            'masked' | 'all'), ``include_cls`` (True) — the thesis setting.
        num_region_classes (int): Detector classes for mrm. Defaults to
            1601.
        data_preprocessor (dict, optional): Defaults to
            ``ViLBERTDataPreprocessor``.
        init_cfg (dict, optional): Initialisation config.

    Example:
        >>> from mmext.testing.bert import make_bert_folder
        >>> from mmext.testing.vilbert import fixed_batch, tiny_vilbert
        >>> model = tiny_vilbert(make_bert_folder('work_dirs/ex_tiny_bert'))
        >>> out = model.extract_feat(fixed_batch(), return_layers=True)
        >>> out['fused'].shape, model.fused_dims, len(out['coattn_layers'])
        (torch.Size([4, 16]), 16, 1)
        >>> sorted(model.loss(fixed_batch()))
        ['loss_itm', 'loss_mim', 'loss_mlm']
    """

    def __init__(self,
                 text: dict,
                 visual: dict,
                 coattention: Optional[dict] = None,
                 pooler: str = 'vilbert',
                 pooled_dims: int = 1024,
                 fusion: str = 'mul',
                 losses: Optional[Dict[str, float]] = None,
                 mim: Optional[dict] = None,
                 num_region_classes: int = 1601,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        data_preprocessor = data_preprocessor or dict(
            type='ViLBERTDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            # mmext's registry: BaseModel would build from mmengine's, which
            # misses mmext types outside the mmext / mmpretrain scopes
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        text = dict(text)
        frozen = dict(
            frozen_stages=text.pop('frozen_stages', -1),
            frozen_patterns=text.pop('frozen_patterns', ()))
        self.bert, mlm_state = build_bert(**text)
        if frozen['frozen_stages'] != -1 or frozen['frozen_patterns']:
            _register_bert_rule()
            freeze_module(self.bert, **frozen)
        self.visual = MODELS.build(visual)
        self.regions = isinstance(self.visual, RegionVisualStream)
        dt, dv = self.bert.config.hidden_size, self.visual.embed_dims
        self.num_text_layers = len(self.bert.encoder.layer)
        co = dict(coattention or dict(preset='none'))
        self.text_ids, self.vision_ids = resolve_schedule(
            co.pop('preset', None), co.pop('text_ids', None),
            co.pop('vision_ids', None), self.num_text_layers,
            self.visual.num_layers)
        self.steps = schedule_steps(self.text_ids, self.vision_ids,
                                    self.num_text_layers,
                                    self.visual.num_layers)
        self.coattn = nn.ModuleList(
            CoAttentionLayer(dt, dv, **co) for _ in self.text_ids)
        if pooler not in ('vilbert', 'cls'):
            raise ValueError(f"ViLBERT: pooler={pooler!r}; use 'vilbert' "
                             "(Linear + ReLU) or 'cls'")
        self.pooler = pooler
        if pooler == 'vilbert':
            self.text_pool = nn.Linear(dt, pooled_dims)
            self.vision_pool = nn.Linear(dv, pooled_dims)
            dt = dv = pooled_dims
        widths = dict(mul=dt, sum=dt, concat=dt + dv, text=dt)
        if fusion not in widths or (fusion in ('mul', 'sum') and dt != dv):
            raise ValueError(
                f'ViLBERT: fusion={fusion!r} with pooled widths {dt}/{dv}; '
                "use 'concat' or 'text', or 'mul' / 'sum' with "
                "pooler='vilbert' (equal widths)")
        self.fusion, self.fused_dims = fusion, widths[fusion]
        weights = dict(_LOSSES, **(losses or {}))
        weights['mim' if self.regions else 'mrm'] = 0
        self.loss_weights = {k: float(v or 0) for k, v in weights.items()}
        self.mim_cfg = dict(
            temperature=0.1, tokens='unmasked', include_cls=True)
        self.mim_cfg.update(mim or {})
        if self.loss_weights['mlm']:
            self.mlm_head = MLMHead(self.bert.get_input_embeddings(),
                                    self.bert.config)
            self.mlm_head.load_bert_head(mlm_state)
        if self.loss_weights['itm']:
            self.itm_head = ITMHead(self.fused_dims)
        if self.loss_weights['mrm']:
            self.region_head = RegionHead(self.visual.embed_dims,
                                          num_region_classes)
        for name in ('text_pool', 'vision_pool', 'itm_head', 'region_head'):
            if hasattr(self, name):
                bert_init_(getattr(self, name))

    # ------------------------------------------------------------ features
    def _text_embed(self, inputs):
        ids = inputs['input_ids']
        return self.bert.embeddings(
            input_ids=ids, token_type_ids=inputs.get('token_type_ids'))

    def _visual_input(self, inputs, view):
        if self.regions:
            return dict(
                feats=inputs['region_feats'],
                locs=inputs['region_locs'],
                mask=inputs.get('region_mask'))
        if view not in inputs:
            raise KeyError(f'ViLBERT: inputs have no {view!r} (patches mode '
                           'reads images); got keys ' + str(sorted(inputs)))
        return inputs[view]

    def _as_input_dict(self, inputs):
        """A bare tensor -> inputs with a one-token text (id 0, unmasked).

        mmengine's ``get_model_complexity_info`` and mmpretrain's
        ``get_flops.py`` feed one tensor (``torch.randn(1, 3, H, W)``); it is
        read as the images (patches mode) or the region features (B, N, F)
        (regions mode, boxes at 0). The text stream then costs one token:
        :func:`mmext.analysis.model_complexity` counts a real text length.
        """
        if isinstance(inputs, dict):
            return inputs
        if not torch.is_tensor(inputs):
            raise TypeError(
                'ViLBERT: inputs must be a dict (input_ids, attention_mask, '
                f'img or region_feats / region_locs) or a tensor, got '
                f'{type(inputs).__name__}')
        ids = torch.zeros(
            inputs.size(0), 1, dtype=torch.long, device=inputs.device)
        out = dict(input_ids=ids, attention_mask=torch.ones_like(ids))
        if self.regions:
            out.update(
                region_feats=inputs,
                region_locs=inputs.new_zeros(inputs.shape[:2] + (5, )))
        else:
            out['img'] = inputs
        return out

    def extract_feat(self,
                     inputs: Union[dict, torch.Tensor],
                     return_layers: bool = False,
                     view: str = 'img') -> dict:
        """Run both streams and the co-attention blocks once.

        Args:
            inputs (dict | torch.Tensor): ``input_ids``, ``attention_mask``
                (B, T) [, ``token_type_ids``] and ``img`` (B, 3, H, W) or
                ``region_feats`` / ``region_locs`` [/ ``region_mask``]; a
                bare tensor is the images / region features with a one-token
                text (for FLOP counters, see :meth:`_as_input_dict`).
            return_layers (bool): Also return per-layer representations (see
                the class docstring). Defaults to False.
            view (str): Which image key to read. Defaults to 'img'.

        Returns:
            dict: See the class docstring.
        """
        inputs = self._as_input_dict(inputs)
        t_mask = inputs.get('attention_mask')
        t = self._text_embed(inputs)
        v, v_mask, ctx = self.visual.embed(self._visual_input(inputs, view))
        out = dict(
            embeddings=dict(text=t, vision=v),
            text_layers=[],
            vision_layers=[],
            coattn_layers=[],
            steps=self.steps)
        for kind, i in self.steps:
            if kind == 'text':
                t = run_bert_layer(self.bert.encoder.layer[i], t, t_mask)
                out['text_layers'].append(t)
            elif kind == 'vision':
                v = self.visual.layer(i, v, v_mask, ctx)
                out['vision_layers'].append(v)
            elif not return_layers:  # maps unused: do not compute them
                t, v = self.coattn[i](t, v, t_mask, v_mask)
            else:
                t, v, maps = self.coattn[i](
                    t, v, t_mask, v_mask, return_attention=True)
                out['coattn_layers'].append(
                    dict(
                        text=t,
                        vision=v,
                        attention=maps,
                        text_id=self.text_ids[i],
                        vision_id=self.vision_ids[i]))
        if not return_layers:
            out = {}
        out.update(text=t, vision=v, text_mask=t_mask, vision_mask=v_mask)
        out.update(self.pool(t, v))
        return out

    def pool(self, text: torch.Tensor,
             vision: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Final sequences -> ``pooled_text``, ``pooled_vision``,
        ``fused``."""
        pt, pv = text[:, 0], vision[:, 0]
        if self.pooler == 'vilbert':
            pt, pv = F.relu(self.text_pool(pt)), F.relu(self.vision_pool(pv))
        fused = dict(
            mul=lambda: pt * pv,
            sum=lambda: pt + pv,
            concat=lambda: torch.cat([pt, pv], -1),
            text=lambda: pt)[self.fusion]()
        return dict(pooled_text=pt, pooled_vision=pv, fused=fused)

    # ------------------------------------------------------------- forward
    def forward(self,
                inputs: Union[dict, torch.Tensor],
                data_samples: Optional[list] = None,
                mode: str = 'tensor') -> Union[dict, List[dict]]:
        """``'tensor'``: :meth:`extract_feat`; ``'loss'``: :meth:`loss`;
        ``'predict'``: :meth:`predict`."""
        if mode == 'tensor':
            return self.extract_feat(inputs)
        if mode == 'loss':
            return self.loss(inputs)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'ViLBERT: invalid mode {mode!r}; use tensor, '
                           'loss or predict')

    def _head_outputs(self, feats, inputs):
        out = {}
        w = self.loss_weights
        if w['mlm'] and 'mlm_labels' in inputs:
            out['mlm'] = self.mlm_head(feats['text'])
        if w['itm'] and 'itm_labels' in inputs:
            out['itm'] = self.itm_head(feats['fused'])
        if w['mrm'] and 'region_targets' in inputs:
            out['mrm'] = self.region_head(feats['vision'][:, 1:])
        return out

    def loss(self, inputs: dict) -> Dict[str, torch.Tensor]:
        """Weighted pre-training losses; each needs its inputs (see
        :class:`ViLBERTPretrainInputs`)."""
        feats = self.extract_feat(inputs)
        heads = self._head_outputs(feats, inputs)
        w, losses = self.loss_weights, {}
        if 'mlm' in heads:
            logits = heads['mlm']
            loss = F.cross_entropy(
                logits.flatten(0, 1).float(),
                inputs['mlm_labels'].flatten(),
                ignore_index=-100)
            # a batch without a masked token contributes 0, not NaN
            losses['loss_mlm'] = w['mlm'] * torch.nan_to_num(loss)
        if 'itm' in heads:
            losses['loss_itm'] = w['itm'] * F.cross_entropy(
                heads['itm'].float(), inputs['itm_labels'])
        if self.regions and w['mrm'] and 'region_targets' not in inputs:
            # skipping it would train without the loss the config asks for
            raise ValueError(
                'ViLBERT: losses.mrm is on but the batch has no '
                'region_targets (the region features carry no cls_prob, '
                'e.g. released BUTD TSVs): set model.losses.mrm=0, or '
                'extract .npz features with cls_prob (README: "BUTD region '
                'features")')
        if 'mrm' in heads:
            losses['loss_mrm'] = w['mrm'] * self.region_loss(
                heads['mrm'], inputs['region_targets'], inputs['mrm_mask'])
        if w['mim'] and 'img_masked' in inputs:
            losses['loss_mim'] = w['mim'] * self.mim_loss(feats, inputs)
        if not losses:
            raise ValueError(
                'ViLBERT: no pre-training loss could be computed; the batch '
                f'has {sorted(inputs)} and the enabled losses are '
                f'{[k for k, v in w.items() if v]} (use ViLBERTPretrainInputs'
                ' in the pipeline and vilbert_collate)')
        return losses

    def mim_loss(self, feats: dict, inputs: dict) -> torch.Tensor:
        """InfoNCE between the strong masked view's vision tokens
        (queries) and the weak view's (keys) on the selected tokens."""
        masked = self.extract_feat(inputs, view='img_masked')
        patch_mask = inputs['patch_mask'].bool()
        n = feats['vision'].size(1) - 1
        if patch_mask.size(1) != n:
            raise ValueError(
                f'ViLBERT MIM: the patch mask has {patch_mask.size(1)} '
                f'patches but the visual stream gives {n} tokens; set '
                'ViLBERTPretrainInputs.mask_patch_size to the backbone\'s '
                'patch size (the token grid)')
        sel = select_tokens(patch_mask, self.mim_cfg['tokens'],
                            self.mim_cfg['include_cls'])
        return info_nce(masked['vision'][sel].float(),
                        feats['vision'][sel].float(),
                        self.mim_cfg['temperature'])

    region_loss = staticmethod(region_kl_loss)  # the mrm loss, in heads.py

    @torch.no_grad()
    def predict(self,
                inputs: dict,
                data_samples: Optional[list] = None) -> List[dict]:
        """Per sample: ITM probability of *matched* and MLM hits / count
        (for :class:`ViLBERTPretrainMetric`)."""
        feats = self.extract_feat(inputs)
        heads = self._head_outputs(feats, inputs)
        b = feats['text'].size(0)
        results = [dict() for _ in range(b)]
        if 'itm' in heads:
            prob = heads['itm'].float().softmax(-1)[:, 1]
            for r, p, y in zip(results, prob, inputs['itm_labels']):
                r.update(itm_score=float(p), itm_label=int(y))
        if 'mlm' in heads:
            labels = inputs['mlm_labels']
            hit = (heads['mlm'].argmax(-1) == labels) & (labels != -100)
            for r, h, y in zip(results, hit, labels):
                r.update(
                    mlm_hits=int(h.sum()), mlm_count=int((y != -100).sum()))
        return results
