# Copyright (c) mmext contributors. All rights reserved.
"""Batched greedy and beam search over a decode *state*.

A state is any object with

- ``step(prefix) -> logprobs``: ``prefix`` is (n, t + 1) token ids starting
  with BOS; returns (n, V) log-probabilities of the next token. An
  incremental state only looks at ``prefix[:, -1]`` and its cache; a
  full-prefix state (R2Gen's way) re-runs the whole prefix.
- ``select(index, within_items)``: keep / reorder rows. ``within_items`` is
  True when rows are only permuted among the beams of the same study (the
  encoder output of a study is the same for all its beams, so it need not
  move).

Both searches run all studies x beams as one batch, never call ``.cuda()``,
and stop as soon as no unfinished hypothesis can change the result. Studies
whose answer is settled are dropped from the batch (their rows leave the
state), so late steps only pay for the studies still being decoded.

R2Gen (``CaptionModel.beam_search``) decodes one Python loop per study and
beam group, keeps finished beams in the beam set with their score minus 1000,
always runs ``max_seq_length`` steps and applies trigram blocking only to
greedy search; here finished beams leave the beam set, the search exits
early (exactly: see :func:`beam_search`) and trigram blocking also works
with beams.
"""
import math
from typing import Callable, Optional, Protocol, Tuple, Union

import torch

__all__ = [
    'parse_length_penalty', 'trigram_counts', 'greedy_search', 'beam_search'
]


class DecodeState(Protocol):
    """A decode state: what :func:`greedy_search` and :func:`beam_search`
    call (the contract in the module docstring)."""

    def step(self, prefix: torch.Tensor) -> torch.Tensor:
        ...

    def select(self, index: torch.Tensor, within_items: bool) -> None:
        ...


def parse_length_penalty(
        spec: Optional[str]) -> Callable[[Union[int, float]], float]:
    """R2Gen's length penalty spec -> ``modifier(length)``.

    ``''`` / None: no penalty; ``'wu_<alpha>'``: GNMT's
    ``((5 + L) / 6) ** alpha``; ``'avg_<alpha>'``: ``L`` (R2Gen ignores alpha).
    A hypothesis' score is ``sum of logprobs / modifier(L)``.
    """
    if not spec:
        return lambda length: 1.0
    kind, _, alpha = str(spec).partition('_')
    try:
        alpha = float(alpha or 0)
    except ValueError:
        alpha = None
    if kind == 'wu' and alpha is not None:
        return lambda length: ((5 + length) / 6)**alpha
    if kind == 'avg':
        return lambda length: float(length)
    raise ValueError(f"length_penalty {spec!r} not understood; use '' (off), "
                     "'wu_<alpha>' (e.g. 'wu_0.6') or 'avg_1'")


def trigram_counts(generated: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """How often each next token would repeat a trigram already generated.

    Args:
        generated (Tensor): (n, L) tokens generated so far (no BOS).
        vocab_size (int): V.

    Returns:
        Tensor: (n, V) float counts: for every earlier position j with
        ``(g[j], g[j+1]) == (g[L-2], g[L-1])`` the token ``g[j+2]`` is counted
        once (R2Gen's greedy ``block_trigrams`` bookkeeping, vectorised).
    """
    n, length = generated.shape
    counts = torch.zeros(n, vocab_size, device=generated.device)
    if length < 3:
        return counts
    a, b = generated[:, -2:-1], generated[:, -1:]
    # trigrams (j, j+1, j+2) for j <= L-3, i.e. every one completed so far
    match = (generated[:, :-2] == a) & (generated[:, 1:-1] == b)
    counts.scatter_add_(1, generated[:, 2:], match.float())
    return counts


def _trigram_adjust(logprobs, prefix, block_trigrams, penalty):
    if not block_trigrams or prefix.size(1) < 4:
        return logprobs
    counts = trigram_counts(prefix[:, 1:], logprobs.size(1))
    return logprobs - penalty * counts.to(logprobs.dtype)


@torch.no_grad()
def greedy_search(
        state: DecodeState,
        batch_size: int,
        max_len: int,
        bos_idx: int = 0,
        eos_idx: int = 0,
        block_trigrams: bool = False,
        trigram_penalty: float = 2 * math.log(2),
        device: Union[str, torch.device, None] = None) -> torch.Tensor:
    """Greedy decoding; returns (batch_size, max_len) tokens, 0 after EOS.

    ``trigram_penalty`` is subtracted from a token's log-probability once per
    earlier occurrence of the trigram it would complete (R2Gen: 2 ln 2; use
    ``float('inf')`` to forbid repeats).
    """
    seq = torch.zeros(batch_size, max_len, dtype=torch.long, device=device)
    rows = torch.arange(batch_size, device=device)
    prefix = torch.full((batch_size, 1),
                        bos_idx,
                        dtype=torch.long,
                        device=device)
    for t in range(max_len):
        logprobs = state.step(prefix)
        logprobs = _trigram_adjust(logprobs, prefix, block_trigrams,
                                   trigram_penalty)
        it = logprobs.argmax(-1)
        seq[rows, t] = it
        prefix = torch.cat([prefix, it[:, None]], 1)
        done = it == eos_idx
        if bool(done.all()):
            break
        if bool(done.any()):
            keep = (~done).nonzero().squeeze(1)
            rows, prefix = rows[keep], prefix[keep]
            state.select(keep, within_items=False)
    if eos_idx != 0:
        # pad after EOS so that decode() sees one sequence per row
        ended = (seq == eos_idx).long().cumsum(1) > 0
        seq = seq.masked_fill(ended & (seq != eos_idx), 0)
    return seq


@torch.no_grad()
def beam_search(
    state: DecodeState,
    batch_size: int,
    beam_size: int,
    max_len: int,
    bos_idx: int = 0,
    eos_idx: int = 0,
    length_penalty: Optional[str] = '',
    block_trigrams: bool = False,
    trigram_penalty: float = 2 * math.log(2),
    early_stop: bool = True,
    device: Union[str, torch.device, None] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Batched beam search; returns the best hypothesis per study.

    ``state`` must hold ``batch_size * beam_size`` rows (study-major). Each
    step keeps the ``beam_size`` best live continuations per study; a
    hypothesis ending in EOS (or reaching ``max_len``) is scored
    ``sum logprob / modifier(length)`` (see :func:`parse_length_penalty`)
    and competes for the study's answer. A study is settled when its best
    finished score is at least ``live_sum / modifier(max_len)`` for every
    live beam: log-probabilities are <= 0 and the modifier grows with
    length, so no live beam can overtake it, and the early exit returns
    exactly what running to ``max_len`` would.

    Returns:
        tuple[Tensor, Tensor]: tokens (batch_size, max_len) with 0 after the
        end, and the best scores (batch_size,).
    """
    k = beam_size
    modifier = parse_length_penalty(length_penalty)
    final_mod = modifier(max_len)
    items = torch.arange(batch_size, device=device)
    scores = torch.zeros(batch_size, k, device=device)
    scores[:, 1:] = float('-inf')  # step 0 expands one beam per study
    prefix = torch.full((batch_size * k, 1),
                        bos_idx,
                        dtype=torch.long,
                        device=device)
    best_score = None  # created at step 0 in the model's dtype
    best_seq = torch.zeros(
        batch_size, max_len, dtype=torch.long, device=device)
    offsets = torch.arange(k, device=device)
    for t in range(max_len):
        logprobs = state.step(prefix)
        logprobs = _trigram_adjust(logprobs, prefix, block_trigrams,
                                   trigram_penalty)
        n, vocab = scores.size(0), logprobs.size(1)
        if best_score is None:
            best_score = logprobs.new_full((batch_size, ), float('-inf'))
        cand = (scores.to(logprobs.dtype).reshape(-1, 1) + logprobs).reshape(
            n, k * vocab)
        top, idx = cand.topk(k, dim=1)  # n k, sorted best first
        beam, tok = idx // vocab, idx % vocab
        rows = (torch.arange(n, device=device)[:, None] * k + beam).reshape(-1)
        prefix = torch.cat([prefix[rows], tok.reshape(-1, 1)], 1)
        state.select(rows, within_items=True)

        ended = tok == eos_idx
        if t == max_len - 1:
            ended = torch.ones_like(ended)
        ended &= torch.isfinite(top)
        finished = torch.where(ended, top / modifier(t + 1),
                               torch.full_like(top, float('-inf')))
        fin_best, fin_k = finished.max(1)
        better = fin_best > best_score[items]
        if bool(better.any()):
            which = better.nonzero().squeeze(1)
            src_rows = which * k + fin_k[which]
            best_score[items[which]] = fin_best[which]
            best_seq[items[which], :t + 1] = prefix[src_rows, 1:]
        scores = top.masked_fill(ended, float('-inf'))
        if t == max_len - 1:
            break
        bound = scores.max(1).values / final_mod
        settled = best_score[items] >= bound if early_stop else \
            ~torch.isfinite(scores).any(1)
        if bool(settled.all()):
            break
        if bool(settled.any()):
            keep = (~settled).nonzero().squeeze(1)
            keep_rows = (keep[:, None] * k + offsets).reshape(-1)
            items, scores = items[keep], scores[keep]
            prefix = prefix[keep_rows]
            state.select(keep_rows, within_items=False)
    if eos_idx != 0:
        ended = (best_seq == eos_idx).long().cumsum(1) > 0
        best_seq = best_seq.masked_fill(ended & (best_seq != eos_idx), 0)
    return best_seq, best_score
