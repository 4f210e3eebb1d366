# Copyright (c) mmext contributors. All rights reserved.
"""ViLBERT's co-attention block (Lu et al., NeurIPS 2019), post- or pre-LN.

Upstream there are two incompatible versions: vilbert-multi-task's
``BertConnectionLayer`` (post-LN, BERT style) and the thesis code's
``CrossAttentionBlock`` (cesipy/bsc-code, pre-LN inputs), which scales the
scores by ``(dim / heads) ** -0.5`` (96 ** -0.5 for 768 / 8) although its
heads are ``bi_dims / heads`` wide (1024 / 8 = 128). Here one block has both
layouts (``norm='post' | 'pre'``), always scales by the real head size,
masks text padding *and* absent regions in both directions, and keeps
separate widths per stream (V's regions stream is 1024-d, BERT 768-d).
"""
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

__all__ = ['CoAttentionLayer', 'StreamFFN', 'additive_mask', 'bert_init_']

#: the additive value of a masked key (as BERT and ViLBERT use; finite,
#: so a row with every key masked stays finite under fp16/bf16 too)
MASKED = -10000.0


def bert_init_(module: nn.Module, std: float = 0.02) -> nn.Module:
    """BERT's initialisation in place, by transformers'
    ``BertPreTrainedModel._init_weights`` on every sub-module: Linear /
    Embedding weights N(0, std), biases and padding rows 0, LayerNorm
    1 / 0 (vilbert-multi-task's ``init_weights``; PyTorch's default is
    Kaiming-uniform). For modules outside a ``BertModel`` (co-attention,
    heads, image layers), which ``post_init`` does not reach."""
    from transformers import BertConfig, BertPreTrainedModel
    bert = BertPreTrainedModel(BertConfig(initializer_range=std))
    for m in module.modules():
        bert._init_weights(m)
    return module


def additive_mask(mask: Optional[torch.Tensor],
                  dtype: torch.dtype) -> Optional[torch.Tensor]:
    """(B, N) 1 = keep / 0 = pad -> (B, 1, 1, N) additive, or None."""
    if mask is None:
        return None
    return (1.0 - mask.to(dtype))[:, None, None, :] * MASKED


class StreamFFN(BaseModule):
    """One stream's feed-forward sub-layer (4x, erf-GELU) with residual.

    ``norm='post'``: ``LN(x + drop(fc2(gelu(fc1(x)))))`` (BERT / ViLBERT);
    ``norm='pre'``: ``x + drop(fc2(drop(gelu(fc1(LN(x))))))`` (thesis code).

    Args:
        dims (int): Stream width.
        ffn_dims (int): Hidden width.
        drop (float): Dropout. Defaults to 0.1.
        norm (str): 'post' or 'pre'. Defaults to 'post'.
        eps (float): LayerNorm epsilon. Defaults to 1e-12.
    """

    def __init__(self,
                 dims: int,
                 ffn_dims: int,
                 drop: float = 0.1,
                 norm: str = 'post',
                 eps: float = 1e-12) -> None:
        super().__init__()
        self.pre = norm == 'pre'
        self.fc1 = nn.Linear(dims, ffn_dims)
        self.fc2 = nn.Linear(ffn_dims, dims)
        self.norm = nn.LayerNorm(dims, eps=eps)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, dims) -> (B, N, dims)."""
        if self.pre:
            h = self.drop(F.gelu(self.fc1(self.norm(x))))
            return x + self.drop(self.fc2(h))
        return self.norm(x + self.drop(self.fc2(F.gelu(self.fc1(x)))))


class CoAttentionLayer(BaseModule):
    """Two-stream co-attention: text queries attend to vision, and back.

    Each stream projects to ``bi_dims`` (``num_heads`` heads), queries the
    other stream's keys / values, projects back with a residual and a
    LayerNorm, then runs its own feed-forward (:class:`StreamFFN`). With
    ``norm='post'`` it is numerically vilbert-multi-task's
    ``BertConnectionLayer`` (golden outputs:
    ``tests/test_models/test_multimodal/test_vilbert_coattention.py``; key
    mapping: ``COATTN_KEYS`` in
    :mod:`mmext.models.utils.checkpoint_convert.vilbert_multitask`); with
    ``norm='pre'`` the thesis code's ``CrossAttentionBlock`` (LayerNorm on
    both inputs first, residual from the un-normalised input, post-LN after
    the residual, pre-LN feed-forward) with the score scale fixed.

    Args:
        text_dims (int): Text stream width (BERT-base: 768).
        vision_dims (int): Vision stream width.
        bi_dims (int): Co-attention width. Defaults to 1024.
        num_heads (int): Co-attention heads. Defaults to 8.
        text_ffn_dims (int, optional): Text feed-forward width.
            Defaults to 4 * text_dims.
        vision_ffn_dims (int, optional): Vision feed-forward width.
            Defaults to 4 * vision_dims.
        attn_drop (float): Dropout on attention probabilities.
            Defaults to 0.1.
        drop (float): Dropout after projections. Defaults to 0.1.
        norm (str): 'post' (vilbert-multi-task) or 'pre' (thesis code).
            Defaults to 'post'.
        eps (float, optional): LayerNorm epsilon. Defaults to 1e-12 for
            'post' (BERT) and 1e-5 for 'pre' (``nn.LayerNorm``).
        init_cfg (dict, optional): Initialisation config. Defaults to None.

    Example:
        >>> import torch
        >>> layer = CoAttentionLayer(16, 12, bi_dims=8, num_heads=2)
        >>> t, v = layer(torch.rand(2, 5, 16), torch.rand(2, 4, 12),
        ...              text_mask=torch.ones(2, 5))
        >>> t.shape, v.shape
        (torch.Size([2, 5, 16]), torch.Size([2, 4, 12]))
    """

    def __init__(self,
                 text_dims: int,
                 vision_dims: int,
                 bi_dims: int = 1024,
                 num_heads: int = 8,
                 text_ffn_dims: Optional[int] = None,
                 vision_ffn_dims: Optional[int] = None,
                 attn_drop: float = 0.1,
                 drop: float = 0.1,
                 norm: str = 'post',
                 eps: Optional[float] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if norm not in ('post', 'pre'):
            raise ValueError(f"CoAttentionLayer: norm={norm!r}; use 'post' "
                             "(vilbert-multi-task) or 'pre' (thesis code)")
        if bi_dims % num_heads:
            raise ValueError(f'CoAttentionLayer: bi_dims={bi_dims} is not a '
                             f'multiple of num_heads={num_heads}')
        eps = eps if eps is not None else (1e-12 if norm == 'post' else 1e-5)
        self.norm_type = norm
        self.num_heads = num_heads
        self.head_dims = bi_dims // num_heads
        self.scale = self.head_dims**-0.5
        if norm == 'pre':
            self.text_norm_in = nn.LayerNorm(text_dims, eps=eps)
            self.vision_norm_in = nn.LayerNorm(vision_dims, eps=eps)
        self.text_q = nn.Linear(text_dims, bi_dims)
        self.text_k = nn.Linear(text_dims, bi_dims)
        self.text_v = nn.Linear(text_dims, bi_dims)
        self.vision_q = nn.Linear(vision_dims, bi_dims)
        self.vision_k = nn.Linear(vision_dims, bi_dims)
        self.vision_v = nn.Linear(vision_dims, bi_dims)
        self.attn_drop = attn_drop
        self.text_proj = nn.Linear(bi_dims, text_dims)
        self.vision_proj = nn.Linear(bi_dims, vision_dims)
        self.text_norm = nn.LayerNorm(text_dims, eps=eps)
        self.vision_norm = nn.LayerNorm(vision_dims, eps=eps)
        self.drop = nn.Dropout(drop)
        self.text_ffn = StreamFFN(text_dims, text_ffn_dims or 4 * text_dims,
                                  drop, norm, eps)
        self.vision_ffn = StreamFFN(vision_dims, vision_ffn_dims
                                    or 4 * vision_dims, drop, norm, eps)
        bert_init_(self)

    def _heads(self, x):  # b n (h d) -> b h n d
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dims).transpose(1, 2)

    def _attend(self, q, k, v, mask, need_weights=False):
        """softmax(q k^T / sqrt(d) + mask) v, heads merged: (b, n_q, bi),
        and the attention probabilities (b, h, n_q, n_k) when
        ``need_weights`` (else None).

        The output always comes from PyTorch's fused
        ``F.scaled_dot_product_attention`` (no (n_q, n_k) probability
        tensor kept for backward; flash / memory-efficient kernels where
        available). SDPA cannot return the weights, so when they are asked
        for they are computed explicitly next to it (before attention
        dropout); the output does not depend on whether maps were asked
        for, and ``maps @ v`` equals it (``test_vilbert_coattention.py``).
        """
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.attn_drop if self.training else 0.0,
            scale=self.scale)  # b h nq d
        probs = None
        if need_weights:
            scores = (q @ k.transpose(-1, -2)) * self.scale  # b h nq nk
            probs = (scores if mask is None else scores + mask).softmax(-1)
        return out.transpose(1, 2).flatten(2), probs

    def forward(
        self,
        text: torch.Tensor,
        vision: torch.Tensor,
        text_mask: Optional[torch.Tensor] = None,
        vision_mask: Optional[torch.Tensor] = None,
        return_attention: bool = False
    ) -> Union[Tuple[torch.Tensor, torch.Tensor], Tuple[
            torch.Tensor, torch.Tensor, Dict[str, torch.Tensor]]]:
        """Args:
            text (torch.Tensor): (B, T, text_dims).
            vision (torch.Tensor): (B, N, vision_dims).
            text_mask (torch.Tensor, optional): (B, T), 1 = token,
                0 = padding.
            vision_mask (torch.Tensor, optional): (B, N), 1 = region / patch,
                0 = absent.
            return_attention (bool): Also return the co-attention maps.
                Defaults to False.

        Returns:
            tuple[torch.Tensor, torch.Tensor]: New text (B, T, text_dims)
            and vision (B, N, vision_dims) states; with ``return_attention``
            a third item, a dict with ``text_to_vision`` (B, heads, T, N:
            each text token's attention over the vision tokens) and
            ``vision_to_text`` (B, heads, N, T).
        """
        t_in, v_in = text, vision
        if self.norm_type == 'pre':
            text, vision = self.text_norm_in(text), self.vision_norm_in(vision)
        t_ctx, t_probs = self._attend(
            self.text_q(text), self.vision_k(vision), self.vision_v(vision),
            additive_mask(vision_mask, text.dtype), return_attention)
        v_ctx, v_probs = self._attend(
            self.vision_q(vision), self.text_k(text), self.text_v(text),
            additive_mask(text_mask, vision.dtype), return_attention)
        text = self.text_norm(t_in + self.drop(self.text_proj(t_ctx)))
        vision = self.vision_norm(v_in + self.drop(self.vision_proj(v_ctx)))
        text, vision = self.text_ffn(text), self.vision_ffn(vision)
        if return_attention:
            return text, vision, dict(
                text_to_vision=t_probs, vision_to_text=v_probs)
        return text, vision
