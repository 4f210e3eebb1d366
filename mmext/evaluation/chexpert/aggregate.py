# Copyright (c) mmext contributors. All rights reserved.
"""Per-report aggregation of mention labels, as the official labeler.

Restates ``stages/aggregate.py`` of stanfordmlgroup/chexpert-labeler:

* a mention is negative if a negation rule marked it, else uncertain if an
  uncertainty rule did, else positive;
* a positive or uncertain mention of any observation other than Support
  Devices (including the No Finding phrases such as "emphysema") means the
  report has a finding; No Finding gets no label from its own phrases;
* a positive or uncertain mention whose text is exactly ``chf`` or ``heart
  failure`` also adds an uncertain Cardiomegaly label;
* No Finding is 1 when the report has no finding, else blank;
* per observation, one label is kept as is; of several, negative with
  uncertain gives uncertain (checked first, so it beats a positive too),
  negative with positive gives positive, uncertain with positive gives
  positive, and equal labels give that label; no mention gives blank (nan).
"""
import math

__all__ = [
    'CATEGORIES', 'POSITIVE', 'NEGATIVE', 'UNCERTAIN', 'aggregate_labels',
    'combine'
]

POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1

#: label order of the official labeler's output CSV
CATEGORIES = [
    'No Finding', 'Enlarged Cardiomediastinum', 'Cardiomegaly', 'Lung Lesion',
    'Lung Opacity', 'Edema', 'Consolidation', 'Pneumonia', 'Atelectasis',
    'Pneumothorax', 'Pleural Effusion', 'Pleural Other', 'Fracture',
    'Support Devices'
]


def combine(labels):
    """One observation's label from the labels of its mentions.

    Args:
        labels (list[int]): 1 / 0 / -1 per mention (may be empty).

    Returns:
        float: 1, 0, -1, or nan for no mention.
    """
    if not labels:
        return math.nan
    if len(labels) == 1:
        return labels[0]
    if NEGATIVE in labels and UNCERTAIN in labels:
        return UNCERTAIN
    if POSITIVE in labels:
        return POSITIVE
    return labels[0]


def aggregate_labels(mentions):
    """Label vector of one report.

    Args:
        mentions (list[tuple]): ``(observation, text, label)`` per mention,
            in report order, ``label`` 1 / 0 / -1.

    Returns:
        list[float]: One value per :data:`CATEGORIES` entry.
    """
    per_category = {}
    no_finding = True
    for category, text, label in mentions:
        if category != 'Support Devices' and label != NEGATIVE:
            no_finding = False
        if category == 'No Finding':
            continue
        if label != NEGATIVE and text in ('chf', 'heart failure'):
            per_category.setdefault('Cardiomegaly', []).append(UNCERTAIN)
        per_category.setdefault(category, []).append(label)
    if no_finding:
        per_category['No Finding'] = [POSITIVE]
    return [combine(per_category.get(c, [])) for c in CATEGORIES]
