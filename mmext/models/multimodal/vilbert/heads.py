# Copyright (c) mmext contributors. All rights reserved.
"""ViLBERT pre-training heads, the contrastive masked-image loss and the
masked-region loss."""
from typing import TYPE_CHECKING, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

if TYPE_CHECKING:  # transformers is imported lazily
    from transformers import BertConfig

__all__ = [
    'MLMHead', 'ITMHead', 'RegionHead', 'info_nce', 'region_kl_loss',
    'select_tokens'
]


def _transform(dims: int, config: Optional['BertConfig'] = None) -> nn.Module:
    """BERT's prediction-head transform (Linear, activation, LayerNorm) from
    transformers, with ``config`` (the text stream's ``BertConfig``: its
    ``hidden_act`` / ``layer_norm_eps``) or BERT's defaults at ``dims``."""
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import \
        BertPredictionHeadTransform
    return BertPredictionHeadTransform(config or BertConfig(hidden_size=dims))


class MLMHead(BaseModule):
    """Masked-language-model head with the decoder tied to the word
    embeddings (as BERT and ViLBERT; the thesis code used an untied
    768x30522 Linear). Parameter names follow BERT's ``cls.predictions``
    so a pre-training checkpoint's head loads with :meth:`load_bert_head`.

    The transform is transformers' ``BertPredictionHeadTransform``. Its
    ``BertLMPredictionHead`` is not used whole: it ties by sharing the
    embedding ``Parameter`` as ``decoder.weight``, which adds
    ``decoder.weight`` / ``decoder.bias`` state-dict keys (released
    checkpoints have none) and counts the embeddings as head parameters.
    Here the head keeps a reference to the embeddings outside its modules
    and projects with their current weight.

    Args:
        word_embeddings (nn.Embedding): The text stream's word embeddings.
        config (BertConfig, optional): The text stream's config (activation,
            LayerNorm epsilon). Defaults to BERT's defaults.
    """

    def __init__(self,
                 word_embeddings: nn.Embedding,
                 config: Optional['BertConfig'] = None) -> None:
        super().__init__()
        self.transform = _transform(word_embeddings.embedding_dim, config)
        self.bias = nn.Parameter(torch.zeros(word_embeddings.num_embeddings))
        # in a tuple, so not a sub-module: the tied weight is owned (and
        # saved) once, by the embeddings
        self._tied = (word_embeddings, )

    @property
    def decoder_weight(self) -> nn.Parameter:
        """The tied decoder weight: the word embeddings' (vocab, D)."""
        return self._tied[0].weight

    def load_bert_head(self, state: dict) -> bool:
        """Load ``cls.predictions.*`` tensors (prefix stripped); True when
        the state had any."""
        own = {
            k: v
            for k, v in state.items()
            if k.startswith('transform.') or k == 'bias'
        }
        if own:
            self.load_state_dict(own, strict=True)
        return bool(own)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, vocab) logits."""
        return F.linear(self.transform(x), self.decoder_weight, self.bias)


class ITMHead(BaseModule):
    """Image-text matching: dropout + Linear(in_dims, 2); class 1 means
    *matched* (vilbert-multi-task's label 1 means a random caption)."""

    def __init__(self, in_dims: int, drop: float = 0.1) -> None:
        super().__init__()
        self.drop = nn.Dropout(drop)
        self.fc = nn.Linear(in_dims, 2)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        """(B, in_dims) -> (B, 2) logits (1 = matched)."""
        return self.fc(self.drop(fused))


class RegionHead(BaseModule):
    """Masked-region head: transform + Linear(D, num_classes) over the
    detector's classes (ViLBERT: 1601 Visual Genome classes)."""

    def __init__(self, dims: int, num_classes: int = 1601) -> None:
        super().__init__()
        self.transform = _transform(dims)
        self.fc = nn.Linear(dims, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, dims) -> (B, N, num_classes) logits."""
        return self.fc(self.transform(x))


def select_tokens(patch_mask: torch.Tensor,
                  tokens: str = 'unmasked',
                  include_cls: bool = True) -> torch.Tensor:
    """Which vision tokens (CLS first) enter the contrastive loss.

    Args:
        patch_mask (torch.Tensor): (B, N) bool, True = patch masked in the
            strong view.
        tokens (str): 'masked', 'unmasked' or 'all' patches.
        include_cls (bool): Add the first (CLS / global) token.

    Returns:
        torch.Tensor: (B, 1 + N) bool selection.
    """
    if tokens == 'masked':
        sel = patch_mask
    elif tokens == 'unmasked':
        sel = ~patch_mask
    elif tokens == 'all':
        sel = torch.ones_like(patch_mask)
    else:
        raise ValueError(f"contrastive MIM: tokens={tokens!r}; use 'masked',"
                         " 'unmasked' or 'all'")
    cls = torch.full_like(patch_mask[:, :1], include_cls)
    return torch.cat([cls, sel], 1)


def info_nce(query: torch.Tensor,
             key: torch.Tensor,
             temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE with in-batch negatives: row i of ``query`` must pick row i
    of ``key`` among all rows (cosine similarity / temperature,
    cross-entropy in one direction, as ``info_nce.InfoNCE()`` that the
    thesis code uses).

    Args:
        query (torch.Tensor): (M, D), e.g. strong-view patch features.
        key (torch.Tensor): (M, D), the weak view's features at the same
            tokens.
        temperature (float): Defaults to 0.1.

    Returns:
        torch.Tensor: The scalar loss.
    """
    q, k = F.normalize(query, dim=-1), F.normalize(key, dim=-1)
    logits = q @ k.t() / temperature
    return F.cross_entropy(logits, torch.arange(len(q), device=logits.device))


def region_kl_loss(logits: torch.Tensor, targets: torch.Tensor,
                   mrm_mask: torch.Tensor) -> torch.Tensor:
    """Masked-region loss: KL(target || softmax(logits)) summed over
    classes, averaged over masked regions (0 when none is masked;
    vilbert-multi-task divides by ``max(n, 0)`` and gets NaN).

    Args:
        logits (torch.Tensor): (B, N, C) :class:`RegionHead` logits.
        targets (torch.Tensor): (B, N, C) detector class distributions.
        mrm_mask (torch.Tensor): (B, N) bool, True = region masked.

    Returns:
        torch.Tensor: The scalar loss (``ViLBERT.region_loss``).
    """
    kl = F.kl_div(
        F.log_softmax(logits.float(), -1), targets.float(),
        reduction='none').sum(-1)
    m = mrm_mask.to(kl.dtype)
    return (kl * m).sum() / m.sum().clamp(min=1)
