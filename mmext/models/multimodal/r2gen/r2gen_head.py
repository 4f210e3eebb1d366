# Copyright (c) mmext contributors. All rights reserved.
"""R2Gen's encoder-decoder as an mmext head, with incremental decoding."""
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmext.registry import MODELS
from .decoding import beam_search, greedy_search
from .layers import (Decoder, DecoderLayer, Embeddings, Encoder, EncoderLayer,
                     PositionalEncoding, RelationalMemory, subsequent_mask)

__all__ = ['R2GenHead', 'IncrementalDecodeState', 'FullPrefixDecodeState']


class VocabSizeMismatchError(ValueError):
    """A checkpoint's vocabulary differs from the tokenizer's."""


class _Transformer(nn.Module):
    """Container with R2Gen's attribute names (``encoder_decoder.model.*``)."""

    def __init__(self, vocab_rows: int, d_model: int, d_ff: int,
                 num_layers: int, num_heads: int, dropout: float,
                 rm_num_slots: int, rm_num_heads: int, rm_d_model: int):
        super().__init__()
        self.encoder = Encoder(
            EncoderLayer(d_model, num_heads, d_ff, dropout), num_layers)
        self.decoder = Decoder(
            DecoderLayer(d_model, num_heads, d_ff, dropout, rm_num_slots,
                         rm_d_model), num_layers)
        self.tgt_embed = nn.Sequential(
            Embeddings(d_model, vocab_rows),
            PositionalEncoding(d_model, dropout))
        self.rm = RelationalMemory(rm_num_slots, rm_d_model, rm_num_heads)

    def embed(self, tokens: torch.Tensor, offset: int = 0) -> torch.Tensor:
        lut, position = self.tgt_embed
        return position(lut(tokens), offset)

    def decode(self, hidden: torch.Tensor, src_mask: Optional[torch.Tensor],
               tgt: torch.Tensor, tgt_mask: torch.Tensor) -> torch.Tensor:
        # R2Gen embeds the targets twice (one dropout draw for the memory,
        # one for the decoder); kept for training parity.
        memory = self.rm(
            self.embed(tgt), self.rm.init_memory(hidden.size(0), hidden))
        return self.decoder(
            self.embed(tgt), hidden, src_mask, tgt_mask, memory)


@MODELS.register_module()
class R2GenHead(BaseModule):
    """R2Gen's memory-driven Transformer encoder-decoder (report head).

    From *Generating Radiology Reports via Memory-driven Transformer*
    (Chen et al., EMNLP 2020): visual tokens -> ``att_embed`` (Linear + ReLU
    + Dropout) -> pre-norm Transformer encoder -> decoder whose sublayer norms
    are memory-driven conditional layer norms (MCLN) driven by a relational
    memory updated with every generated token. Parameter names match
    R2Gen's ``encoder_decoder.*`` so its checkpoints convert by prefix.

    R2Gen decodes by re-running the decoder and the memory over the whole
    prefix at each step and only on CUDA; this head adds an incremental
    decode state (cached self-attention keys/values per layer, encoder
    key/value projections computed once, the relational-memory state
    carried along) used by batched greedy / beam search, and a full-prefix
    state kept for verification and benchmarks.

    Args:
        vocab_size (int): Tokenizer vocabulary size V (ids 1..V; the
            embedding and logit layers have V + 1 rows, row 0 = BOS/EOS/pad).
        in_channels (int): Channels of the visual tokens. Defaults to 2048.
        d_model (int): Model width. Defaults to 512.
        d_ff (int): Feed-forward width. Defaults to 512.
        num_layers (int): Encoder and decoder layers. Defaults to 3.
        num_heads (int): Attention heads. Defaults to 8.
        dropout (float): Transformer dropout. Defaults to 0.1.
        drop_prob_lm (float): Dropout after ``att_embed``. Defaults to 0.5.
        rm_num_slots (int): Relational-memory slots. Defaults to 3.
        rm_num_heads (int): Relational-memory heads. Defaults to 8.
        rm_d_model (int): Relational-memory width; R2Gen's MCLN needs it equal
            to ``d_model``. Defaults to 512.
        init_cfg (dict, optional): mmengine init config. Defaults to None
            (R2Gen's init: Xavier-uniform for every matrix of the
            Transformer, MCLN biases 0.1).

    Example:
        >>> head = R2GenHead(vocab_size=20, in_channels=32, d_model=16,
        ...                  d_ff=16, num_layers=1, num_heads=2,
        ...                  rm_num_heads=2, rm_d_model=16)
        >>> feats = torch.rand(2, 98, 32)          # B, N tokens, C
        >>> tokens = torch.randint(1, 21, (2, 7))  # B, T (BOS ... EOS)
        >>> head(feats, tokens).shape               # log-probs of steps 1..T-1
        torch.Size([2, 6, 21])
        >>> head.generate(feats, max_len=5, strategy='greedy').shape
        torch.Size([2, 5])
    """

    def __init__(self,
                 vocab_size: int,
                 in_channels: int = 2048,
                 d_model: int = 512,
                 d_ff: int = 512,
                 num_layers: int = 3,
                 num_heads: int = 8,
                 dropout: float = 0.1,
                 drop_prob_lm: float = 0.5,
                 rm_num_slots: int = 3,
                 rm_num_heads: int = 8,
                 rm_d_model: int = 512,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if rm_d_model != d_model:
            raise ValueError(
                f'R2GenHead: rm_d_model ({rm_d_model}) must equal d_model '
                f'({d_model}); R2Gen\'s MCLN maps the memory with a '
                'rm_d_model x rm_d_model layer onto d_model features')
        self.vocab_size = vocab_size
        self.in_channels = in_channels
        self.d_model = d_model
        self.att_embed = nn.Sequential(
            nn.Linear(in_channels, d_model), nn.ReLU(),
            nn.Dropout(drop_prob_lm))
        self.model = _Transformer(vocab_size + 1, d_model, d_ff, num_layers,
                                  num_heads, dropout, rm_num_slots,
                                  rm_num_heads, rm_d_model)
        for p in self.model.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        self.logit = nn.Linear(d_model, vocab_size + 1)

    # ----------------------------------------------------------- training
    def encode(self, feats: torch.Tensor) -> torch.Tensor:
        """Visual tokens (B, N, C) -> encoder states (B, N, d_model)."""
        if feats.size(-1) != self.in_channels:
            raise ValueError(
                f'R2GenHead: visual tokens have {feats.size(-1)} channels '
                f'but in_channels={self.in_channels}; set head.in_channels '
                f'(or neck.out_channels) to {feats.size(-1)}')
        return self.model.encoder(self.att_embed(feats), None)

    def forward(self, feats: torch.Tensor,
                tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log-probabilities (R2Gen's ``_forward``).

        Args:
            feats (Tensor): (B, N, C) visual tokens.
            tokens (Tensor): (B, T) ``[0] + ids + [0]`` padded with 0.

        Returns:
            Tensor: (B, T - 1, V + 1) log-probabilities of tokens 1..T-1.
        """
        hidden = self.encode(feats)
        seq = tokens[:, :-1]
        # R2Gen masks pad keys (the first position, BOS = 0, stays visible)
        seq_mask = seq > 0
        seq_mask[:, 0] = True
        seq_mask = seq_mask.unsqueeze(-2) & subsequent_mask(
            seq.size(-1), seq.device)
        out = self.model.decode(hidden, None, seq, seq_mask)
        return F.log_softmax(self.logit(out), dim=-1)

    # ----------------------------------------------------------- decoding
    def decode_state(
        self,
        hidden: torch.Tensor,
        expand: int = 1,
        incremental: bool = True
    ) -> Union['IncrementalDecodeState', 'FullPrefixDecodeState']:
        """A decode state for :mod:`.decoding` with ``expand`` rows per
        study (the beams)."""
        cls = IncrementalDecodeState if incremental else FullPrefixDecodeState
        return cls(self, hidden, expand)

    @torch.no_grad()
    def generate(self,
                 feats: torch.Tensor,
                 max_len: int = 60,
                 strategy: str = 'beam',
                 beam_size: int = 3,
                 incremental: bool = True,
                 **kwargs) -> torch.Tensor:
        """Generate token ids (B, max_len), 0 after the end.

        ``kwargs`` go to :func:`~.decoding.beam_search` (``length_penalty``,
        ``block_trigrams``, ``trigram_penalty``, ``early_stop``) or
        :func:`~.decoding.greedy_search` (``block_trigrams``,
        ``trigram_penalty``).
        """
        hidden = self.encode(feats)
        b = hidden.size(0)
        if strategy == 'greedy' or (strategy == 'beam' and beam_size == 1):
            kwargs.pop('length_penalty', None)
            kwargs.pop('early_stop', None)
            state = self.decode_state(hidden, 1, incremental)
            return greedy_search(
                state, b, max_len, device=hidden.device, **kwargs)
        if strategy != 'beam':
            raise ValueError(f"decode strategy {strategy!r}: use 'greedy' "
                             "or 'beam'")
        state = self.decode_state(hidden, beam_size, incremental)
        seq, _ = beam_search(
            state, b, beam_size, max_len, device=hidden.device, **kwargs)
        return seq

    # ----------------------------------------------------- checkpoints
    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + 'model.tgt_embed.0.lut.weight'
        if key in state_dict:
            rows = state_dict[key].shape[0]
            if rows != self.vocab_size + 1:
                raise VocabSizeMismatchError(
                    f'R2GenHead: the checkpoint has a vocabulary of '
                    f'{rows - 1} tokens ({rows} embedding rows) but the '
                    f'tokenizer has {self.vocab_size} ({self.vocab_size + 1} '
                    'rows); build the tokenizer from the checkpoint '
                    "(meta['dataset_meta']['vocab'], see "
                    'mmext.apis.restore_vocab_from_checkpoint) or '
                    'from the annotation file the model was trained on')
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _repeat_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    return x if n == 1 else x.repeat_interleave(n, dim=0)


class IncrementalDecodeState:
    """O(T) decoding: one token per step against cached keys/values.

    Holds per decoder layer the projected self-attention keys/values of all
    previous steps and the projected encoder keys/values, plus the
    relational-memory state; each step embeds only the newest token.
    """

    def __init__(self, head: R2GenHead, hidden: torch.Tensor, expand: int = 1):
        self.model = head.model
        self.logit = head.logit
        layers = self.model.decoder.layers
        # project the encoder states once per study, then share across beams
        self.src_kv = [
            tuple(
                _repeat_rows(t, expand)
                for t in layer.src_attn.project_kv(hidden, hidden))
            for layer in layers
        ]
        n = hidden.size(0) * expand
        self.memory = self.model.rm.init_memory(n, hidden)
        self.caches = [dict() for _ in layers]

    def step(self, prefix: torch.Tensor) -> torch.Tensor:
        t = prefix.size(1) - 1
        y = self.model.embed(prefix[:, -1:], offset=t)  # n 1 d
        self.memory = self.model.rm.forward_step(y[:, 0], self.memory)
        memory = self.memory.unsqueeze(1)
        x = y
        for layer, cache, src_kv in zip(self.model.decoder.layers, self.caches,
                                        self.src_kv):
            x = layer.forward_step(x, cache, src_kv, None, memory)
        out = self.model.decoder.norm(x)[:, 0]
        return F.log_softmax(self.logit(out), dim=-1)

    def select(self, index: torch.Tensor, within_items: bool) -> None:
        self.memory = self.memory[index]
        for cache in self.caches:
            for key in cache:
                cache[key] = cache[key][index]
        if not within_items:
            self.src_kv = [(k[index], v[index]) for k, v in self.src_kv]


class FullPrefixDecodeState:
    """R2Gen's decoding: re-run memory and decoder over the whole prefix."""

    def __init__(self, head: R2GenHead, hidden: torch.Tensor, expand: int = 1):
        self.model = head.model
        self.logit = head.logit
        self.hidden = _repeat_rows(hidden, expand)

    def step(self, prefix: torch.Tensor) -> torch.Tensor:
        mask = subsequent_mask(prefix.size(1), prefix.device)
        out = self.model.decode(self.hidden, None, prefix, mask)
        return F.log_softmax(self.logit(out[:, -1]), dim=-1)

    def select(self, index: torch.Tensor, within_items: bool) -> None:
        if not within_items:
            self.hidden = self.hidden[index]
