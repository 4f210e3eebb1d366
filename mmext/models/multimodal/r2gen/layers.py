# Copyright (c) mmext contributors. All rights reserved.
"""Building blocks of R2Gen's memory-driven Transformer (Chen et al., 2020).

The maths follows R2Gen exactly (its released checkpoints load into these
modules key for key): LayerNorm with the *unbiased* std and ``eps`` added to
the std, attention with masked scores filled with ``-1e9``, the relational
memory with identity-initialised slots and input/forget gates, and the
memory-driven conditional layer norm (MCLN).

Unlike R2Gen, every block can also run one time step at a time against a
cache (``DecoderLayer.forward_step``, ``RelationalMemory.forward_step``),
which is what makes decoding O(T) per sequence instead of R2Gen's O(T^2)
re-run of the whole prefix at every step.
"""
import copy
import math
from typing import Callable, Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    'clones', 'R2GenLayerNorm', 'ConditionalLayerNorm', 'MultiHeadedAttention',
    'PositionwiseFeedForward', 'Embeddings', 'PositionalEncoding',
    'RelationalMemory', 'EncoderLayer', 'Encoder', 'DecoderLayer', 'Decoder',
    'subsequent_mask'
]

# what a residual connection wraps: (b, t, d) -> (b, t, d)
Sublayer = Callable[[torch.Tensor], torch.Tensor]


def clones(module: nn.Module, n: int) -> nn.ModuleList:
    return nn.ModuleList([copy.deepcopy(module) for _ in range(n)])


def subsequent_mask(
        size: int,
        device: Union[str, torch.device, None] = None) -> torch.Tensor:
    """(1, size, size) bool mask, True where position j <= i may be seen."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()[None]


def _std_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    # R2Gen normalises with the unbiased std and adds eps to the std (not to
    # the variance as nn.LayerNorm does); both matter for checkpoint parity.
    mean = x.mean(-1, keepdim=True)
    std = x.std(-1, keepdim=True)
    return (x - mean) / (std + eps)


class R2GenLayerNorm(nn.Module):
    """LayerNorm as R2Gen computes it (unbiased std, eps added to the std)."""

    def __init__(self, features: int, eps: float = 1e-6):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(features))
        self.beta = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * _std_norm(x, self.eps) + self.beta


class ConditionalLayerNorm(nn.Module):
    """Memory-driven conditional layer norm (MCLN): gamma and beta are shifted
    by MLPs of the relational-memory state of the same time step.

    ``mlp_gamma``'s second Linear is ``rm_d_model x rm_d_model`` as in R2Gen
    (so R2Gen requires ``d_model == rm_d_model``; we keep its shapes).
    """

    def __init__(self,
                 d_model: int,
                 rm_num_slots: int,
                 rm_d_model: int,
                 eps: float = 1e-6):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(d_model))
        self.beta = nn.Parameter(torch.zeros(d_model))
        self.eps = eps
        self.mlp_gamma = nn.Sequential(
            nn.Linear(rm_num_slots * rm_d_model, d_model), nn.ReLU(),
            nn.Linear(rm_d_model, rm_d_model))
        self.mlp_beta = nn.Sequential(
            nn.Linear(rm_num_slots * rm_d_model, d_model), nn.ReLU(),
            nn.Linear(d_model, d_model))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.constant_(m.bias, 0.1)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        # x: (b, t, d); memory: (b, t, slots * d_rm), one state per step
        gamma = self.gamma + self.mlp_gamma(memory)
        beta = self.beta + self.mlp_beta(memory)
        return gamma * _std_norm(x, self.eps) + beta


class MultiHeadedAttention(nn.Module):
    """R2Gen's multi-head attention (``linears`` = q, k, v, out projections).

    ``forward`` is R2Gen's; :meth:`project_kv` and :meth:`attend` split it so
    that a decoder can cache projected keys / values across time steps.
    """

    def __init__(self, h: int, d_model: int, dropout: float = 0.1):
        super().__init__()
        assert d_model % h == 0, f'd_model {d_model} not divisible by {h}'
        self.d_k = d_model // h
        self.h = h
        self.linears = clones(nn.Linear(d_model, d_model), 4)
        self.dropout = nn.Dropout(p=dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        # (b, n, d) -> (b, h, n, d_k)
        return x.view(x.size(0), -1, self.h, self.d_k).transpose(1, 2)

    def project_q(self, query: torch.Tensor) -> torch.Tensor:
        return self._split(self.linears[0](query))

    def project_kv(self, key: torch.Tensor,
                   value: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self._split(self.linears[1](key)), self._split(
            self.linears[2](value))

    def attend(self,
               q: torch.Tensor,
               k: torch.Tensor,
               v: torch.Tensor,
               mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """q: (b, h, nq, d_k); k, v: (b, h, nk, d_k); mask broadcastable to
        (b, nq, nk), True = visible."""
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        if mask is not None:
            scores = scores.masked_fill(mask.unsqueeze(1) == 0, -1e9)
        p_attn = self.dropout(F.softmax(scores, dim=-1))
        x = torch.matmul(p_attn, v)  # b h nq d_k
        x = x.transpose(1,
                        2).contiguous().view(q.size(0), -1, self.h * self.d_k)
        return self.linears[3](x)

    def forward(self,
                query: torch.Tensor,
                key: torch.Tensor,
                value: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.attend(
            self.project_q(query), *self.project_kv(key, value), mask=mask)


class PositionwiseFeedForward(nn.Module):

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.1):
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(F.relu(self.w_1(x))))


class Embeddings(nn.Module):
    """Token embedding scaled by sqrt(d_model)."""

    def __init__(self, d_model: int, vocab: int):
        super().__init__()
        self.lut = nn.Embedding(vocab, d_model)
        self.d_model = d_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lut(x) * math.sqrt(self.d_model)


class PositionalEncoding(nn.Module):
    """Sinusoidal positions; ``offset`` lets a decoder embed step t alone.

    The table is a non-persistent buffer: it is a pure function of the
    shape, so checkpoints do not carry R2Gen's 5000 x d copy of it.
    """

    def __init__(self, d_model: int, dropout: float, max_len: int = 5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len).unsqueeze(1).float()
        div_term = torch.exp(
            torch.arange(0, d_model, 2).float() *
            -(math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer('pe', pe.unsqueeze(0), persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        return self.dropout(x + self.pe[:, offset:offset + x.size(1)])


class RelationalMemory(nn.Module):
    """R2Gen's relational memory: ``num_slots`` slots of ``d_model``.

    One step with input y_t and memory m (R2Gen, Sec. 3.2):
    m~ = m + MHA(m, [m; y_t]); m~ = m~ + MLP(m~);
    i, f = split(W y_t + U tanh(m)); m' = sigma(i) * tanh(m~) + sigma(f) * m.
    """

    def __init__(self, num_slots: int, d_model: int, num_heads: int = 1):
        super().__init__()
        self.num_slots = num_slots
        self.num_heads = num_heads
        self.d_model = d_model
        self.attn = MultiHeadedAttention(num_heads, d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, d_model), nn.ReLU(),
            nn.Linear(d_model, d_model), nn.ReLU())
        self.W = nn.Linear(d_model, d_model * 2)
        self.U = nn.Linear(d_model, d_model * 2)

    def init_memory(self, batch_size: int, like: torch.Tensor) -> torch.Tensor:
        """Identity slots padded (or cut) to d_model: (b, slots * d)."""
        eye = torch.eye(
            self.num_slots, self.d_model, dtype=like.dtype, device=like.device)
        return eye.reshape(1, -1).expand(batch_size, -1)

    def forward_step(self, y: torch.Tensor,
                     memory: torch.Tensor) -> torch.Tensor:
        # y: (b, d); memory: (b, slots * d) -> (b, slots * d)
        memory = memory.reshape(-1, self.num_slots, self.d_model)
        kv = torch.cat([memory, y.unsqueeze(1)], 1)
        next_memory = memory + self.attn(memory, kv, kv)
        next_memory = next_memory + self.mlp(next_memory)
        gates = self.W(y.unsqueeze(1)) + self.U(torch.tanh(memory))
        input_gate, forget_gate = torch.split(gates, self.d_model, dim=2)
        next_memory = (
            torch.sigmoid(input_gate) * torch.tanh(next_memory) +
            torch.sigmoid(forget_gate) * memory)
        return next_memory.reshape(-1, self.num_slots * self.d_model)

    def forward(self, inputs: torch.Tensor,
                memory: torch.Tensor) -> torch.Tensor:
        """Run over a sequence (b, t, d); returns every step's state
        (b, t, slots * d)."""
        outputs = []
        for i in range(inputs.shape[1]):
            memory = self.forward_step(inputs[:, i], memory)
            outputs.append(memory)
        return torch.stack(outputs, dim=1)


class SublayerConnection(nn.Module):
    """Pre-norm residual: x + dropout(sublayer(norm(x)))."""

    def __init__(self, d_model: int, dropout: float):
        super().__init__()
        self.norm = R2GenLayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, sublayer: Sublayer) -> torch.Tensor:
        return x + self.dropout(sublayer(self.norm(x)))


class ConditionalSublayerConnection(nn.Module):
    """Pre-MCLN residual: x + dropout(sublayer(MCLN(x, memory)))."""

    def __init__(self, d_model: int, dropout: float, rm_num_slots: int,
                 rm_d_model: int):
        super().__init__()
        self.norm = ConditionalLayerNorm(d_model, rm_num_slots, rm_d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, sublayer: Sublayer,
                memory: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(sublayer(self.norm(x, memory)))


class EncoderLayer(nn.Module):

    def __init__(self, d_model: int, num_heads: int, d_ff: int,
                 dropout: float):
        super().__init__()
        self.d_model = d_model
        self.self_attn = MultiHeadedAttention(num_heads, d_model)
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff, dropout)
        self.sublayer = clones(SublayerConnection(d_model, dropout), 2)

    def forward(self, x: torch.Tensor,
                mask: Optional[torch.Tensor]) -> torch.Tensor:
        x = self.sublayer[0](x, lambda x: self.self_attn(x, x, x, mask))
        return self.sublayer[1](x, self.feed_forward)


class Encoder(nn.Module):

    def __init__(self, layer: EncoderLayer, n: int):
        super().__init__()
        self.layers = clones(layer, n)
        self.norm = R2GenLayerNorm(layer.d_model)

    def forward(self, x: torch.Tensor,
                mask: Optional[torch.Tensor]) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)


class DecoderLayer(nn.Module):
    """Decoder layer whose three sublayer norms are MCLNs."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float,
                 rm_num_slots: int, rm_d_model: int):
        super().__init__()
        self.d_model = d_model
        self.self_attn = MultiHeadedAttention(num_heads, d_model)
        self.src_attn = MultiHeadedAttention(num_heads, d_model)
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff, dropout)
        self.sublayer = clones(
            ConditionalSublayerConnection(d_model, dropout, rm_num_slots,
                                          rm_d_model), 3)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor,
                src_mask: Optional[torch.Tensor],
                tgt_mask: Optional[torch.Tensor],
                memory: torch.Tensor) -> torch.Tensor:
        x = self.sublayer[0](x, lambda x: self.self_attn(x, x, x, tgt_mask),
                             memory)
        x = self.sublayer[1](
            x, lambda x: self.src_attn(x, hidden, hidden, src_mask), memory)
        return self.sublayer[2](x, self.feed_forward, memory)

    def forward_step(self, x: torch.Tensor, cache: Dict[str, torch.Tensor],
                     src_kv: Tuple[torch.Tensor, torch.Tensor],
                     src_mask: Optional[torch.Tensor],
                     memory: torch.Tensor) -> torch.Tensor:
        """One time step. x: (b, 1, d); memory: (b, 1, slots * d);
        ``cache`` holds this layer's projected self-attention keys/values of
        the previous steps (appended to here); ``src_kv`` the projected
        encoder keys/values, computed once per sequence."""

        def self_attn(h):
            k, v = self.self_attn.project_kv(h, h)
            if 'k' in cache:
                k = torch.cat([cache['k'], k], dim=2)
                v = torch.cat([cache['v'], v], dim=2)
            cache['k'], cache['v'] = k, v
            # causal by construction: the cache holds only steps <= t
            return self.self_attn.attend(self.self_attn.project_q(h), k, v)

        def src_attn(h):
            return self.src_attn.attend(
                self.src_attn.project_q(h), *src_kv, mask=src_mask)

        x = self.sublayer[0](x, self_attn, memory)
        x = self.sublayer[1](x, src_attn, memory)
        return self.sublayer[2](x, self.feed_forward, memory)


class Decoder(nn.Module):

    def __init__(self, layer: DecoderLayer, n: int):
        super().__init__()
        self.layers = clones(layer, n)
        self.norm = R2GenLayerNorm(layer.d_model)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor,
                src_mask: Optional[torch.Tensor],
                tgt_mask: Optional[torch.Tensor],
                memory: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, hidden, src_mask, tgt_mask, memory)
        return self.norm(x)
