# Copyright (c) mmext contributors. All rights reserved.
"""ViLBERT's visual stream: backbone patch tokens or detector regions.

Both streams expose the same stepwise interface so co-attention can sit
between any two of their layers: ``embed(inputs) -> (x, mask, ctx)``,
``num_layers``, ``layer(i, x, mask, ctx)`` and ``finish(x)``.
"""
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmext.models.backbones.vit_interface import (embed_tokens, is_vit,
                                                  layer_context, run_layer)
from mmext.registry import MODELS
from .coattention import additive_mask, bert_init_

__all__ = ['PatchVisualStream', 'RegionVisualStream', 'build_bert_layers']


def build_bert_layers(num_layers: int,
                      dims: int,
                      num_heads: int,
                      ffn_dims: int,
                      drop: float = 0.1) -> nn.ModuleList:
    """Post-LN transformer layers as in ViLBERT's ``BertImageLayer``
    (``transformers.BertLayer`` with a vision-sized ``BertConfig``)."""
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertLayer
    cfg = BertConfig(
        hidden_size=dims,
        num_attention_heads=num_heads,
        intermediate_size=ffn_dims,
        hidden_dropout_prob=drop,
        attention_probs_dropout_prob=drop,
        attn_implementation='sdpa')
    return bert_init_(nn.ModuleList(BertLayer(cfg) for _ in range(num_layers)))


def run_bert_layer(layer: nn.Module, x: torch.Tensor,
                   mask: Optional[torch.Tensor]) -> torch.Tensor:
    """One ``BertLayer`` on (B, N, D) with a (B, N) 1 / 0 key mask."""
    out = layer(x, attention_mask=additive_mask(mask, x.dtype))
    return out[0] if isinstance(out, tuple) else out


@MODELS.register_module()
class PatchVisualStream(BaseModule):
    """Image -> tokens from any registered backbone, interleavable.

    A ViT-family backbone (mmpretrain ``VisionTransformer``, ``TRARViT``;
    build it through ``PartialFreeze`` to freeze part of it) is *split*: its
    patch embedding, CLS token and position embedding make the tokens and
    its blocks become the stream's layers, so co-attention can sit after
    any block (the thesis code calls timm ViT blocks one by one for this).
    Any other backbone (ResNet, TinyViT, ...) runs whole and its output goes
    through :class:`~mmext.models.necks.VisualTokenNeck`, the neck the
    report generator uses, with the neck's global vector prepended as the
    first token. ``num_extra_layers`` post-LN layers (ViLBERT's image
    layers) can follow in both cases; they are interleavable too.

    Args:
        backbone (dict): Backbone config (``out_type='raw'`` for a ViT
            that is not split).
        neck (dict, optional): ``VisualTokenNeck`` config for a backbone
            that is not split. Defaults to ``in_channels`` = embed_dims.
        embed_dims (int): Width of the backbone's tokens (ViT-B: 768).
        split (bool, optional): Split a ViT-family backbone into layers.
            Defaults to None (split when the backbone is a
            ``VisionTransformer``, see
            :mod:`mmext.models.backbones.vit_interface`).
        num_extra_layers (int): Extra post-LN layers. Defaults to 0.
        extra_layer (dict, optional): ``num_heads``, ``ffn_dims``, ``drop``
            of the extra layers. Defaults to 12 heads, 4x, 0.1.
        final_norm (bool): Apply the backbone's final LayerNorm (``ln1``)
            after the last split block. The thesis code never applies timm's
            ``norm``. Defaults to False.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 backbone: dict,
                 neck: Optional[dict] = None,
                 embed_dims: int = 768,
                 split: Optional[bool] = None,
                 num_extra_layers: int = 0,
                 extra_layer: Optional[dict] = None,
                 final_norm: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.split = is_vit(self.backbone) if split is None else split
        if self.split and not is_vit(self.backbone):
            raise ValueError(
                f'PatchVisualStream: split=True needs a ViT-family backbone '
                f'(mmpretrain VisionTransformer or a subclass); '
                f'{type(self.backbone).__name__} is not one; use split=False '
                'with a VisualTokenNeck')
        if not self.split:
            neck = dict(
                neck or {}, type='VisualTokenNeck', cls='drop', tokens='patch')
            neck.setdefault('in_channels', embed_dims)
            self.neck = MODELS.build(neck)
            embed_dims = self.neck.out_channels
        self.embed_dims = embed_dims
        self.final_norm = final_norm
        ex = dict(num_heads=12, ffn_dims=4 * embed_dims, drop=0.1)
        ex.update(extra_layer or {})
        self.extra_layers = build_bert_layers(num_extra_layers, embed_dims,
                                              **ex)
        self.num_backbone_layers = len(self.backbone.layers) \
            if self.split else 0

    @property
    def num_layers(self) -> int:
        """Interleavable layers: split backbone blocks + extra layers."""
        return self.num_backbone_layers + len(self.extra_layers)

    def embed(
            self, img: torch.Tensor
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Any]:
        """(B, 3, H, W) -> tokens (B, 1 + N, C), mask None, layer context."""
        if not self.split:
            tokens, global_feat = self.neck(self.backbone(img))
            return torch.cat([global_feat[:, None], tokens], 1), None, None
        x, hw = embed_tokens(self.backbone, img)
        ctx = layer_context(self.backbone, hw)  # TRAR-ViT: span masks
        return x, None, ctx

    def layer(self,
              i: int,
              x: torch.Tensor,
              mask: Optional[torch.Tensor] = None,
              ctx: Any = None) -> torch.Tensor:
        """Layer ``i`` of the stream on tokens (B, 1 + N, C)."""
        if i < self.num_backbone_layers:
            x = run_layer(self.backbone, i, x, ctx)
            if (i == self.num_backbone_layers - 1 and self.final_norm
                    and self.backbone.final_norm):
                x = self.backbone.ln1(x)
            return x
        return run_bert_layer(self.extra_layers[i - self.num_backbone_layers],
                              x, mask)


@MODELS.register_module()
class RegionVisualStream(BaseModule):
    """Detector regions -> ViLBERT image embeddings and layers.

    Embeds N region features (2048-d for BUTD) and their 5-d locations
    (x1/w, y1/h, x2/w, y2/h, area fraction) as ViLBERT's
    ``BertImageEmbeddings`` does (``LN(W_f f + W_l l)``, dropout), with the
    mean of the present regions prepended as the global token at location
    [0, 0, 1, 1, 1] (vilbert-multi-task prepends it in its data sets; here
    the model does it, so every region source gets it). Then
    ``num_layers`` post-LN layers (ViLBERT's 6-layer / 1024-d default).

    Args:
        feature_dims (int): Region feature width. Defaults to 2048.
        embed_dims (int): Stream width. Defaults to 1024.
        num_layers (int): Layers. Defaults to 6.
        num_heads (int): Heads. Defaults to 8.
        ffn_dims (int): Feed-forward width. Defaults to 1024.
        drop (float): Dropout. Defaults to 0.1.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 feature_dims: int = 2048,
                 embed_dims: int = 1024,
                 num_layers: int = 6,
                 num_heads: int = 8,
                 ffn_dims: int = 1024,
                 drop: float = 0.1,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.feature_dims = feature_dims
        self.embed_dims = embed_dims
        self.feat_embed = nn.Linear(feature_dims, embed_dims)
        self.loc_embed = nn.Linear(5, embed_dims)
        self.norm = nn.LayerNorm(embed_dims, eps=1e-12)
        self.drop = nn.Dropout(drop)
        self.layers = build_bert_layers(num_layers, embed_dims, num_heads,
                                        ffn_dims, drop)
        bert_init_(self)

    @property
    def num_layers(self) -> int:
        """The region stream's layers."""
        return len(self.layers)

    def embed(
        self, regions: Dict[str, torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor, None]:
        """regions: dict with ``feats`` (B, N, F), ``locs`` (B, N, 5),
        ``mask`` (B, N) -> tokens (B, 1 + N, D), mask (B, 1 + N), None."""
        feats, locs = regions['feats'], regions['locs']
        mask = regions.get('mask')
        if feats.size(-1) != self.feature_dims:
            raise ValueError(
                f'RegionVisualStream: regions are {feats.size(-1)}-d but '
                f'feature_dims={self.feature_dims}; set '
                f'model.visual.feature_dims={feats.size(-1)}')
        if mask is None:
            mask = feats.new_ones(feats.shape[:2])
        mask = mask.to(feats.dtype)
        mean = (feats * mask[..., None]).sum(1) / mask.sum(1, True).clamp(1)
        g_loc = feats.new_tensor([0., 0., 1., 1.,
                                  1.]).expand(feats.size(0), 1, 5)
        feats = torch.cat([mean[:, None], feats], 1)
        locs = torch.cat([g_loc, locs.to(feats.dtype)], 1)
        mask = torch.cat([mask.new_ones(mask.size(0), 1), mask], 1)
        x = self.drop(self.norm(self.feat_embed(feats) + self.loc_embed(locs)))
        return x, mask, None

    def layer(self,
              i: int,
              x: torch.Tensor,
              mask: Optional[torch.Tensor] = None,
              ctx: Any = None) -> torch.Tensor:
        """Layer ``i`` on tokens (B, 1 + N, D) with the region mask."""
        return run_bert_layer(self.layers[i], x, mask)
