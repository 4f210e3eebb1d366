# Copyright (c) mmext contributors. All rights reserved.
"""Report cleaning, sentence splitting and mention extraction.

Follows the official CheXpert labeler (stanfordmlgroup/chexpert-labeler,
``loader/load.py`` and ``stages/extract.py``): the report is lower-cased,
``and/or`` and ``a/b`` become ``or``, a space follows every comma and period,
and a phrase *mentions* an observation wherever it occurs as a plain
substring of a sentence (so ``tube`` also matches ``tuberculosis`` and
``plate`` matches ``plate-like``), unless the match overlaps an *unmention*
phrase of the same observation (``pericardial effusion``, ``calcified
nodule``, positional phrases such as ``over the heart``). The phrase tables
below restate the official lists (a leading / trailing space is part of the
phrase, as in the official ``_line_`` and ``drain_`` entries).

Approximated: the official splitter is NLTK Punkt; here a sentence ends at
a ``.``, ``?`` or ``!`` followed by a space (Punkt also keeps some
``1. lower-case`` list numbers attached, which only moves the boundary).
"""
import re

__all__ = [
    'MENTIONS', 'UNMENTIONS', 'clean_report', 'split_sentences',
    'find_mentions'
]

#: observation -> phrases (substrings of the cleaned, lower-cased text)
MENTIONS = {
    'No Finding':
    ('emphysema', 'blunt', 'density', 'elevation', 'eventration', 'scoliosis',
     'degenera', 'calcifi', 'hyperinflation', 'bronchospasm', 'asthma',
     'hernia', 'copd', 'interstitial markings', 'plaque', 'osteophytosis',
     'aortic disease', 'bronchiolitis', 'airways disease', 'thickening',
     'cephalization', 'aspiration', 'bullae', 'hyperinflat', 'contusion',
     'atherosclero', 'osteopenia', 'metastasis', 'granuloma',
     'pneumomediastinum', 'pneumoperitoneum', 'osteodystrophy', 'cuffing',
     'irregular lucency', 'inflam', 'fissure', 'hypertension', 'prominen',
     'kyphosis', 'defib', 'hyperexpansion', 'bullet', 'reticula',
     'thoracentesis', 'bronchitis', 'volume loss', 'deformity', 'hemorrhage',
     'hematoma', 'radiopaque', 'aerophagia', 'arthropathy', 'tracheostomy'),
    'Enlarged Cardiomediastinum':
    (' mediastinum', 'cardiomediastinum', 'contour',
     'mediastinal configuration', 'mediastinal silhouette',
     'pericardial silhouette', 'cardiac silhouette and vascularity'),
    'Cardiomegaly':
    ('cardiomegaly', 'the heart', 'heart size', 'cardiac enlargement',
     'cardiac size', 'cardiac shadow', 'cardiac contour', 'cardiac silhouette',
     'enlarged heart'),
    'Lung Lesion':
    ('mass', 'nodular density', 'nodular densities', 'nodular opacity',
     'nodular opacities', 'nodular opacification', 'nodule', 'lump',
     'cavitary lesion', 'carcinoma', 'neoplasm', 'tumor'),
    'Lung Opacity':
    ('opaci', 'decreased translucency', 'increased density',
     'airspace disease', 'air-space disease', 'air space disease',
     'infiltrate', 'infiltration', 'interstitial marking',
     'interstitial pattern', 'interstitial lung', 'reticular pattern',
     'reticular marking', 'reticulation', 'parenchymal scarring',
     'peribronchial thickening', 'wall thickening', 'scar'),
    'Edema': ('edema', 'heart failure', 'chf', 'vascular congestion',
              'pulmonary congestion', 'indistinctness', 'vascular prominence'),
    'Consolidation': ('consolidat', ),
    'Pneumonia': ('pneumonia', 'infection', 'infectious process',
                  'infectious'),
    'Atelectasis': ('atelecta', 'collapse'),
    'Pneumothorax': ('pneumothorax', 'pneumothoraces'),
    'Pleural Effusion': ('pleural fluid', 'effusion'),
    'Pleural Other': ('pleural thickening', 'fibrosis', 'fibrothorax',
                      'pleural scar', 'pleural parenchymal scar',
                      'pleuro-parenchymal scar', 'pleuro-pericardial scar'),
    'Fracture': ('fracture', ),
    'Support Devices':
    ('pacer', ' line ', 'lines', 'picc', 'tube', 'valve', 'catheter',
     'pacemaker', 'hardware', 'arthroplast', 'marker', 'icd', 'defib',
     'device', 'drain ', 'plate', 'screw', 'cannula', 'apparatus', 'coil',
     'support', 'equipment', 'mediport'),
}


def _positional_unmentions():
    # "over the heart", "in the left cardiac silhouette", ...: the official
    # extractor builds these from the heart / mediastinum phrases (the
    # ' mediastinum' entry yields a double space there, so never matches).
    prefixes = [
        a + b for a in ('over the', 'overly the', 'in the')
        for b in ('', ' superior', ' left', ' right')
    ]
    heart = [
        p + ' ' + m.replace('the ', '') for p in prefixes
        for m in MENTIONS['Cardiomegaly']
        if m not in ('cardiomegaly', 'cardiac enlargement')
    ]
    mediastinum = [
        p + ' ' + m for p in prefixes
        for m in MENTIONS['Enlarged Cardiomediastinum']
    ]
    return heart, mediastinum


#: observation -> phrases whose matches cancel overlapping mentions
UNMENTIONS = {
    'Lung Lesion': ('calcified nodul', 'massive', 'massengale'),
    'Lung Opacity': ('pleural scar', ),
    'Pleural Effusion': ('pericardial effusion', ),
}
UNMENTIONS['Cardiomegaly'], UNMENTIONS['Enlarged Cardiomediastinum'] = map(
    tuple, _positional_unmentions())

_SPACE_AFTER = str.maketrans({'.': '. ', ',': ', '})


def clean_report(report):
    """Lower-case and normalise a report as the official loader does."""
    text = report.lower().replace('and/or', 'or')
    text = re.sub(r'(?<=[a-z])/(?=[a-z])', ' or ', text)
    text = text.replace('..', '.').translate(_SPACE_AFTER)
    text = ' '.join(text.split())
    return re.sub(r'\.\s+\.', '.', text)


def split_sentences(text):
    """Sentences of a cleaned report, each keeping its final period."""
    return [s for s in re.split(r'(?<=[.?!]) ', text) if s.strip()]


def _spans(sentence, phrase):
    """Non-overlapping ``(start, end)`` of ``phrase`` (as re.finditer)."""
    spans, start = [], sentence.find(phrase)
    while start >= 0:
        spans.append((start, start + len(phrase)))
        start = sentence.find(phrase, start + len(phrase))
    return spans


def find_mentions(sentence):
    """Mentions in one cleaned sentence.

    Args:
        sentence (str): One sentence from :func:`split_sentences`.

    Returns:
        list[tuple]: ``(observation, phrase, start, end)`` per match, in
        the official order (observation, then phrase, then position).
    """
    found = []
    for observation, phrases in MENTIONS.items():
        hits = [(phrase, span) for phrase in phrases
                for span in _spans(sentence, phrase)]
        if not hits:
            continue
        blocked = [
            span for phrase in UNMENTIONS.get(observation, ())
            for span in _spans(sentence, phrase)
        ]
        found += [(observation, phrase, start, end)
                  for phrase, (start, end) in hits
                  if not any(start < b_end and end > b_start
                             for b_start, b_end in blocked)]
    return found
