# Copyright (c) mmext contributors. All rights reserved.
"""ViLBERT pre-training heads and the contrastive masked-image loss."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

__all__ = ['MLMHead', 'ITMHead', 'RegionHead', 'info_nce', 'select_tokens']


def _transform(dims, config=None):
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

    def __init__(self, word_embeddings, config=None):
        super().__init__()
        self.transform = _transform(word_embeddings.embedding_dim, config)
        self.bias = nn.Parameter(torch.zeros(word_embeddings.num_embeddings))
        # in a tuple, so not a sub-module: the tied weight is owned (and
        # saved) once, by the embeddings
        self._tied = (word_embeddings, )

    @property
    def decoder_weight(self):
        """The tied decoder weight: the word embeddings' (vocab, D)."""
        return self._tied[0].weight

    def load_bert_head(self, state):
        """Load ``cls.predictions.*`` tensors (prefix stripped)."""
        own = {
            k: v
            for k, v in state.items()
            if k.startswith('transform.') or k == 'bias'
        }
        if own:
            self.load_state_dict(own, strict=True)
        return bool(own)

    def forward(self, x):
        """(B, T, D) -> (B, T, vocab) logits."""
        return F.linear(self.transform(x), self.decoder_weight, self.bias)


class ITMHead(BaseModule):
    """Image-text matching: dropout + Linear(in_dims, 2); class 1 means
    *matched* (vilbert-multi-task's label 1 means a random caption)."""

    def __init__(self, in_dims, drop=0.1):
        super().__init__()
        self.drop = nn.Dropout(drop)
        self.fc = nn.Linear(in_dims, 2)

    def forward(self, fused):
        return self.fc(self.drop(fused))


class RegionHead(BaseModule):
    """Masked-region head: transform + Linear(D, num_classes) over the
    detector's classes (ViLBERT: 1601 Visual Genome classes)."""

    def __init__(self, dims, num_classes=1601):
        super().__init__()
        self.transform = _transform(dims)
        self.fc = nn.Linear(dims, num_classes)

    def forward(self, x):
        return self.fc(self.transform(x))


def select_tokens(patch_mask, tokens='unmasked', include_cls=True):
    """Which vision tokens (CLS first) enter the contrastive loss.

    Args:
        patch_mask (Tensor): (B, N) bool, True = patch masked in the strong
            view.
        tokens (str): 'masked', 'unmasked' or 'all' patches.
        include_cls (bool): Add the first (CLS / global) token.

    Returns:
        Tensor: (B, 1 + N) bool selection.
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


def info_nce(query, key, temperature=0.1):
    """InfoNCE with in-batch negatives: row i of ``query`` must pick row i
    of ``key`` among all rows (cosine similarity / temperature,
    cross-entropy in one direction, as ``info_nce.InfoNCE()`` that the
    thesis code uses).

    Args:
        query (Tensor): (M, D), e.g. strong-view patch features.
        key (Tensor): (M, D), the weak view's features at the same tokens.
        temperature (float): Defaults to 0.1.
    """
    q, k = F.normalize(query, dim=-1), F.normalize(key, dim=-1)
    logits = q @ k.t() / temperature
    return F.cross_entropy(logits, torch.arange(len(q), device=logits.device))
