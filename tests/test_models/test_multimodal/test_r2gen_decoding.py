# Copyright (c) mmext contributors. All rights reserved.
"""Batched incremental decoding == R2Gen's full-prefix recompute; the search
itself against exhaustive search and R2Gen's trigram bookkeeping."""
import itertools
import math

import pytest
import torch

from mmext.models.multimodal.r2gen.decoding import (beam_search, greedy_search,
                                                    parse_length_penalty,
                                                    trigram_counts)
from mmext.models.multimodal.r2gen.r2gen_head import R2GenHead


def tiny_head(seed, vocab=23, eos_bias=0.0):
    torch.manual_seed(seed)
    head = R2GenHead(
        vocab_size=vocab,
        in_channels=12,
        d_model=16,
        d_ff=20,
        num_layers=2,
        num_heads=2,
        rm_num_slots=3,
        rm_num_heads=2,
        rm_d_model=16).double().eval()
    with torch.no_grad():
        head.logit.weight.mul_(4)  # peaked distributions: EOS and repeats
        head.logit.bias[0] += eos_bias
    return head


DECODES = [
    dict(strategy='greedy'),
    dict(strategy='greedy', block_trigrams=True),
    dict(strategy='beam', beam_size=3),
    dict(strategy='beam', beam_size=4, length_penalty='wu_0.9'),
    dict(
        strategy='beam',
        beam_size=3,
        block_trigrams=True,
        trigram_penalty=float('inf'),
        length_penalty='avg_1'),
]


# seeds whose random weights end some reports early and others not, in
# every decode mode (so the compaction of finished studies is exercised)
@pytest.mark.parametrize('seed', [0, 2, 8, 9])
@pytest.mark.parametrize('decode', DECODES, ids=str)
def test_incremental_equals_full_prefix(seed, decode):
    head = tiny_head(seed, eos_bias=1.0)
    torch.manual_seed(100 + seed)
    feats = torch.randn(8, 7, 12, dtype=torch.float64) * 4
    fast = head.generate(feats, max_len=16, incremental=True, **decode)
    slow = head.generate(feats, max_len=16, incremental=False, **decode)
    assert torch.equal(fast, slow)
    lengths = [(s != 0).sum().item() for s in fast]
    assert len(set(lengths)) > 1, lengths


class CountingState:
    """Wraps a decode state, counts steps and rows decoded."""

    def __init__(self, inner):
        self.inner, self.steps, self.rows = inner, 0, 0

    def step(self, prefix):
        self.steps += 1
        self.rows += prefix.size(0)
        return self.inner.step(prefix)

    def select(self, index, within_items):
        self.inner.select(index, within_items)


def test_greedy_stops_when_all_finished():
    head = tiny_head(0, eos_bias=50.0)  # EOS always wins
    hidden = head.encode(torch.rand(3, 7, 12, dtype=torch.float64))
    state = CountingState(head.decode_state(hidden))
    seq = greedy_search(state, 3, 40)
    assert state.steps == 1 and not seq.any()


def test_beam_early_exit_is_exact_and_saves_work():
    head = tiny_head(3, eos_bias=3.0)
    hidden = head.encode(torch.rand(6, 7, 12, dtype=torch.float64))
    for lp in ('', 'wu_0.7'):
        early = CountingState(head.decode_state(hidden, 3))
        full = CountingState(head.decode_state(hidden, 3))
        a, sa = beam_search(early, 6, 3, 30, length_penalty=lp)
        b, sb = beam_search(
            full, 6, 3, 30, length_penalty=lp, early_stop=False)
        assert torch.equal(a, b)
        torch.testing.assert_close(sa, sb)  # batch shapes differ: ulps
        assert early.rows < full.rows


class MarkovState:
    """Next-token log-probs depend on the last token only (a fixed table)."""

    def __init__(self, table, rows):
        self.table, self.rows = table, rows

    def step(self, prefix):
        return self.table[prefix[:, -1]]

    def select(self, index, within_items):
        pass


def exhaustive_best(table, max_len, modifier):
    vocab = table.size(0)
    best, best_seq = -math.inf, None
    for length in range(1, max_len + 1):
        for seq in itertools.product(range(vocab), repeat=length):
            # a hypothesis ends at its first EOS (0) or at max_len
            if 0 in seq[:-1] or (length < max_len and seq[-1] != 0):
                continue
            prev, total = 0, 0.0
            for tok in seq:
                total += table[prev, tok].item()
                prev = tok
            score = total / modifier(length)
            if score > best:
                best, best_seq = score, list(seq)
    return best, best_seq


@pytest.mark.parametrize('length_penalty', ['', 'wu_1.5'])
def test_wide_beam_finds_the_exhaustive_optimum(length_penalty):
    torch.manual_seed(0)
    vocab, max_len = 3, 5
    table = torch.randn(vocab, vocab, dtype=torch.float64).mul(2)
    table = table.log_softmax(-1)
    modifier = parse_length_penalty(length_penalty)
    best, best_seq = exhaustive_best(table, max_len, modifier)
    beam = vocab**max_len  # never prunes anything
    seq, score = beam_search(
        MarkovState(table, beam),
        1,
        beam,
        max_len,
        length_penalty=length_penalty)
    assert score.item() == pytest.approx(best)
    got = seq[0].tolist()
    assert got[:len(best_seq)] == best_seq and not any(got[len(best_seq):])


def r2gen_trigram_mask(seq, vocab):
    """R2Gen's greedy bookkeeping (dict of previous pairs) for the last step
    of ``seq`` (list of tokens generated so far)."""
    t = len(seq)
    trigrams = {}
    for step in range(3, t + 1):  # R2Gen records one trigram per step
        prev_two, current = tuple(seq[step - 3:step - 1]), seq[step - 1]
        trigrams.setdefault(prev_two, []).append(current)
    mask = [0.0] * vocab
    for j in trigrams.get(tuple(seq[t - 2:t]), []):
        mask[j] += 1
    return mask


def test_trigram_counts_match_r2gen_bookkeeping():
    g = torch.Generator().manual_seed(0)
    seqs = torch.randint(1, 4, (20, 9), generator=g)
    for length in range(3, 10):
        got = trigram_counts(seqs[:, :length], 5)
        want = torch.tensor(
            [r2gen_trigram_mask(s.tolist(), 5) for s in seqs[:, :length]])
        assert torch.equal(got, want), length
    assert trigram_counts(seqs[:, :2], 5).sum() == 0


def test_hard_trigram_block_never_repeats_a_trigram():
    head = tiny_head(1)
    feats = torch.rand(4, 7, 12, dtype=torch.float64)
    plain = head.generate(feats, max_len=30, strategy='beam', beam_size=3)
    blocked = head.generate(
        feats,
        max_len=30,
        strategy='beam',
        beam_size=3,
        block_trigrams=True,
        trigram_penalty=float('inf'))

    def repeats(seq):
        seq = [t for t in seq.tolist() if t]
        grams = [tuple(seq[i:i + 3]) for i in range(len(seq) - 2)]
        return len(grams) - len(set(grams))

    assert sum(repeats(s) for s in plain) > 0  # the test has teeth
    assert all(repeats(s) == 0 for s in blocked)


def test_beam_one_is_greedy_and_bad_options_fail():
    head = tiny_head(2, eos_bias=2.0)
    feats = torch.rand(3, 7, 12, dtype=torch.float64)
    hidden = head.encode(feats)
    one, _ = beam_search(head.decode_state(hidden, 1), 3, 1, 12)
    assert torch.equal(one, greedy_search(head.decode_state(hidden), 3, 12))
    with pytest.raises(ValueError, match='wu_<alpha>'):
        parse_length_penalty('gnmt')
    with pytest.raises(ValueError, match="'greedy' or 'beam'"):
        head.generate(feats, strategy='sample')
