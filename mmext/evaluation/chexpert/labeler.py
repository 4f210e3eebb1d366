# Copyright (c) mmext contributors. All rights reserved.
"""A pure-Python CheXpert-14 report labeler.

The official CheXpert labeler (Irvin et al., AAAI 2019;
stanfordmlgroup/chexpert-labeler) extracts mentions with phrase lists,
classifies each as negative / uncertain / positive with NegBio semgrex
patterns over a Bllip + Stanford dependency parse, and aggregates per
report. It needs Java, the Bllip GENIA+PubMed model and a Python-3.6-era
NegBio, which is why the clinical efficacy numbers of R2Gen-style papers are
hard to reproduce, and upstream R2Gen ships no labeler. This package keeps
the official mention phrases and cleaning (:mod:`.mentions`) and the
official aggregation (:mod:`.aggregate`), and restates every negation /
uncertainty pattern as a word-window rule (:mod:`.rules`; patterns without
an equivalent are listed with the reason in :mod:`.coverage`). Agreement
with labels written by the official rules, and with the official sample
output, is measured in ``tests/test_evaluation/test_chexpert_labeler.py``.
For publication numbers run the official labeler on the ``res.csv`` /
``gts.csv`` files that :class:`ClinicalEfficacyMetric` writes.
"""
from .aggregate import (CATEGORIES, NEGATIVE, POSITIVE, UNCERTAIN,
                        aggregate_labels)
from .mentions import clean_report, find_mentions, split_sentences
from .rules import NEGATION, classify, tokenize

__all__ = [
    'CATEGORIES', 'POSITIVE', 'NEGATIVE', 'UNCERTAIN', 'label_report',
    'label_reports', 'report_mentions'
]

_LABEL = {None: POSITIVE, NEGATION: NEGATIVE}


def _sentence_mentions(sentence):
    found = find_mentions(sentence)
    if sentence.startswith(('findings: no ', 'impression: no ')):
        flags = [{NEGATION}] * len(found)  # NegBio's sentence-level rule
    else:
        tokens = tokenize(sentence)
        flags = []
        for _, phrase, start, end in found:
            stage = classify(tokens, start, end, phrase)
            flags.append(set() if stage is None else {stage})
    # NegBio marks every mention lying inside a marked one (e.g. "cardiac
    # silhouette" inside "cardiac silhouette and vascularity")
    spans = [(s, e) for _, _, s, e in found]
    merged = [set(f) for f in flags]
    for (s, e), flag in zip(spans, flags):
        for j, (s2, e2) in enumerate(spans):
            if s <= s2 and e2 <= e:
                merged[j] |= flag
    result = []
    for (category, _, s, e), flag in zip(found, merged):
        label = NEGATIVE if NEGATION in flag else (
            UNCERTAIN if flag else POSITIVE)
        result.append((category, sentence[s:e], label))
    return result


def report_mentions(report):
    """Every mention of ``report`` with its label.

    Args:
        report (str): Report text (raw or R2Gen-cleaned).

    Returns:
        list[tuple]: ``(observation, text, label)``, label 1 / 0 / -1.
    """
    if not isinstance(report, str):
        raise TypeError(f'CheXpert labeler: a report must be a str, got '
                        f'{type(report).__name__}; pass the report text '
                        f'(e.g. data_sample["gt_report"]).')
    return [
        m for sentence in split_sentences(clean_report(report))
        for m in _sentence_mentions(sentence)
    ]


def label_report(report):
    """CheXpert-14 labels of one report (official aggregation).

    Args:
        report (str): Report text (raw or R2Gen-cleaned).

    Returns:
        list[float]: One value per :data:`CATEGORIES` entry, each 1, 0, -1
        or ``nan`` (not mentioned).
    """
    return aggregate_labels(report_mentions(report))


def label_reports(reports):
    """:func:`label_report` for each report (list of label lists)."""
    return [label_report(r) for r in reports]
