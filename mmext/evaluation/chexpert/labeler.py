# Copyright (c) mmext contributors. All rights reserved.
"""A pure-Python CheXpert-14 report labeler.

The official CheXpert labeler (Irvin et al., AAAI 2019) extracts mentions
with phrase lists, classifies each mention as negative / uncertain / positive
with NegBio dependency-parse patterns, and aggregates per report. It needs
Java, a Bllip parser model and Python 2-era NegBio, which is why the clinical
efficacy numbers of R2Gen-style papers are hard to reproduce. This module
keeps the official mention semantics and aggregation but replaces the parse
patterns with word-window rules (negation / uncertainty cues before and after
a mention, cut at clause breakers). Its agreement with hand labels is
measured in ``tests/test_evaluation/test_chexpert_labeler.py``.
"""
import math
import re

__all__ = ['CATEGORIES', 'POSITIVE', 'NEGATIVE', 'UNCERTAIN',
           'label_report', 'label_reports']

POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1

#: label order of the official labeler's output CSV
CATEGORIES = [
    'No Finding', 'Enlarged Cardiomediastinum', 'Cardiomegaly',
    'Lung Lesion', 'Lung Opacity', 'Edema', 'Consolidation', 'Pneumonia',
    'Atelectasis', 'Pneumothorax', 'Pleural Effusion', 'Pleural Other',
    'Fracture', 'Support Devices'
]

# Mention phrases: words separated by spaces; a trailing '*' matches any
# word starting with the stem, other words match themselves or plurals.
_MENTIONS = {
    'Enlarged Cardiomediastinum': [
        'cardiomediastinal', 'cardiomediastinum', 'mediastinum',
        'mediastinal contour', 'mediastinal silhouette',
        'mediastinal configuration', 'pericardial silhouette',
        'mediastinal widening', 'widened mediastinum'],
    'Cardiomegaly': [
        'cardiomegaly', 'the heart', 'heart size', 'cardiac enlargement',
        'cardiac size', 'cardiac shadow', 'cardiac contour',
        'cardiac silhouette', 'enlarged heart'],
    'Lung Lesion': [
        'mass', 'nodul*', 'nodular densit*', 'nodular opacit*', 'lump',
        'cavitary lesion', 'carcinoma', 'neoplasm', 'tumor'],
    'Lung Opacity': [
        'opacit*', 'opacification', 'infiltrat*', 'airspace disease',
        'air space disease', 'air-space disease', 'increased density',
        'interstitial marking', 'interstitial pattern', 'reticular*',
        'scarring', 'peribronchial thickening', 'decreased translucency'],
    'Edema': [
        'edema', 'heart failure', 'chf', 'vascular congestion',
        'pulmonary congestion', 'vascular prominence', 'indistinctness'],
    'Consolidation': ['consolidat*'],
    'Pneumonia': ['pneumonia', 'infection', 'infectious'],
    'Atelectasis': ['atelecta*', 'collapse*'],
    'Pneumothorax': ['pneumothora*'],
    'Pleural Effusion': ['effusion', 'pleural fluid'],
    'Pleural Other': [
        'pleural thickening', 'fibrosis', 'fibrothorax', 'pleural scar*',
        'pleural-parenchymal scar*'],
    'Fracture': ['fracture*'],
    'Support Devices': [
        'pacer', 'pacemaker', 'line', 'picc', 'tube', 'valve', 'catheter',
        'hardware', 'arthroplast*', 'icd', 'defibrillator', 'device',
        'drain', 'plate', 'screw', 'cannula', 'coil', 'mediport',
        'sternotomy wire', 'port-a-cath'],
    # findings outside the 13 that still make "No Finding" false
    'No Finding': [
        'emphysema', 'blunt*', 'scoliosis', 'degenera*', 'calcifi*',
        'hyperinflat*', 'hyperexpan*', 'granuloma*', 'hernia', 'copd',
        'kyphosis', 'osteopenia', 'deformity', 'eventration', 'elevation',
        'prominen*', 'bullae', 'pneumomediastinum', 'metasta*'],
}
# a mention inside one of these is not a mention
_UNMENTIONS = {
    'Pleural Effusion': ['pericardial effusion'],
    'Lung Lesion': ['calcified nodul*', 'massive'],
    'Lung Opacity': ['pleural scar*'],
    'Support Devices': ['pleural line', 'skin line', 'midline'],
}

_BREAKERS = {'but', 'however', 'although', 'though', 'which', 'whereas',
             'while', 'there', 'except', 'otherwise'}
_PRE_NEG = {'no', 'not', 'without', 'negative', 'free', 'absence',
            'resolution', 'resolved', 'removal', 'nor', 'neither'}
_PRE_NEG_NEAR = {'normal', 'unremarkable'}  # only right before the mention
_POST_NEG = {'normal', 'unremarkable', 'resolved', 'absent', 'removed',
             'cleared', 'not'}
_RESOLVED = {'resolved', 'improved', 'changed', 'cleared', 'removed'}
_UNCERTAIN = {'may', 'might', 'could', 'possible', 'possibly', 'probable',
              'probably', 'likely', 'questionable', 'question', 'suspicious',
              'suspected', 'suspect', 'concerning', 'concern', 'suggest',
              'suggests', 'suggesting', 'suggestive', 'versus', 'vs',
              'differential', 'consider', 'borderline', 'equivocal',
              'presumed', 'indeterminate', 'worrisome', 'cannot'}
_POST_UNCERTAIN = {'possible', 'possibly', 'suspected', 'questionable',
                   'equivocal', 'borderline', 'versus', 'vs'}
_POST_MODAL = re.compile(r'\b(may|might|could|is likely|are likely) be\b')
# "not excluded", "cannot be excluded", "rule out": uncertain, not negative
_UNCERTAIN_NEG = re.compile(
    r'\b(cannot|can not|not|rule|ruled)\b( be)? (exclude|excluded|out)\b')
# the official labeler calls a stable / unchanged heart or mediastinum
# uncertain (post-negation-uncertainty patterns); kept for parity
_STABLE = {'stable', 'unchanged'}
_VERBS = {'is', 'are', 'was', 'were', 'has', 'have', 'appears', 'appear',
          'remains', 'remain', 'measures', 'demonstrates', 'shows'}
_PRE_WINDOW, _POST_WINDOW = 10, 6

_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_SENT = re.compile(r'(?<!\d)\.(?!\d)|[;!?\n]')


def _compile(phrases):
    return [p.split() for p in phrases]


_MENTION_WORDS = {c: _compile(p) for c, p in _MENTIONS.items()}
_UNMENTION_WORDS = {c: _compile(p) for c, p in _UNMENTIONS.items()}


def _word_match(word, pattern):
    if pattern.endswith('*'):
        return word.startswith(pattern[:-1])
    return word in (pattern, pattern + 's', pattern + 'es')


def _find(words, phrase):
    """Start indices where ``phrase`` (a word list) occurs in ``words``."""
    n = len(phrase)
    return [i for i in range(len(words) - n + 1)
            if all(_word_match(words[i + k], phrase[k]) for k in range(n))]


def _covered(words, start, end, unmentions):
    for phrase in unmentions:
        for s in _find(words, phrase):
            if s <= start and end <= s + len(phrase) or \
                    (start <= s < end):
                return True
    return False


def _classify(words, start, end, category):
    """Label of the mention ``words[start:end]`` from its clause."""
    pre = []
    for w in reversed(words[max(0, start - _PRE_WINDOW):start]):
        if w in _BREAKERS:
            break
        pre.insert(0, w)
    post, seen_verb = [], False
    for w in words[end:end + _POST_WINDOW]:
        if w in _BREAKERS or (w == 'and' and seen_verb):
            break
        seen_verb |= w in _VERBS
        post.append(w)
    clause = ' '.join(pre + words[start:end] + post)
    if _UNCERTAIN_NEG.search(clause):
        return UNCERTAIN
    # "has not resolved" keeps the finding: 'not' + a resolution verb
    # cancel each other
    post_neg = [w for i, w in enumerate(post) if w in _POST_NEG and not (
        w == 'not' and i + 1 < len(post) and post[i + 1] in _RESOLVED) and
        not (w in _RESOLVED and i > 0 and post[i - 1] == 'not')]
    if any(w in _PRE_NEG for w in pre) or post_neg or \
            any(w in _PRE_NEG_NEAR for w in pre[-2:]):
        return NEGATIVE
    # cues before a mention hedge it ("may represent pneumonia"); after it,
    # only cues that hedge the mention itself ("heart may be enlarged"),
    # not a hedged explanation of it ("opacity likely reflects atelectasis")
    if any(w in _UNCERTAIN for w in pre) or \
            any(w in _POST_UNCERTAIN for w in post) or \
            _POST_MODAL.search(' '.join(post)):
        return UNCERTAIN
    if category in ('Cardiomegaly', 'Enlarged Cardiomediastinum') and \
            any(w in _STABLE for w in post):
        return UNCERTAIN
    return POSITIVE


def _mentions(report):
    """(category, label, text) for every mention in ``report``."""
    found = []
    for sent in _SENT.split(report.lower()):
        words = _WORD.findall(sent)
        for category, phrases in _MENTION_WORDS.items():
            spans = []
            for phrase in phrases:
                spans += [(s, s + len(phrase)) for s in _find(words, phrase)]
            # longest first; drop spans inside an already kept one
            kept = []
            for s, e in sorted(spans, key=lambda x: (x[0], x[0] - x[1])):
                if any(ks <= s and e <= ke for ks, ke in kept):
                    continue
                if _covered(words, s, e, _UNMENTION_WORDS.get(category, [])):
                    continue
                kept.append((s, e))
                found.append((category, _classify(words, s, e, category),
                              ' '.join(words[s:e])))
    return found


def label_report(report):
    """CheXpert-14 labels of one report.

    Aggregation as the official labeler: per observation, positive beats
    uncertain beats negative, no mention is ``nan``; ``chf`` / ``heart
    failure`` also make Cardiomegaly uncertain; No Finding is 1 when no
    observation other than Support Devices (including the extra "other
    finding" phrases) is positive or uncertain, else ``nan``.

    Args:
        report (str): Report text (raw or R2Gen-cleaned).

    Returns:
        list[float]: One value per :data:`CATEGORIES` entry, each 1, 0, -1
        or ``nan``.
    """
    labels = {}
    no_finding = True
    for category, label, text in _mentions(report):
        if category != 'Support Devices' and label != NEGATIVE:
            no_finding = False
        if category == 'No Finding':
            continue
        if label != NEGATIVE and text in ('chf', 'heart failure'):
            labels.setdefault('Cardiomegaly', []).append(UNCERTAIN)
        labels.setdefault(category, []).append(label)
    if no_finding:
        labels['No Finding'] = [POSITIVE]
    vec = []
    for category in CATEGORIES:
        found = labels.get(category)
        if not found:
            vec.append(math.nan)
        elif POSITIVE in found:
            vec.append(POSITIVE)
        elif UNCERTAIN in found:
            vec.append(UNCERTAIN)
        else:
            vec.append(NEGATIVE)
    return vec


def label_reports(reports):
    """:func:`label_report` for each report (list of label lists)."""
    return [label_report(r) for r in reports]
