# Copyright (c) mmext contributors. All rights reserved.
"""Which official CheXpert patterns mmext restates, and which not (why).

Pattern ids are ``file:line`` in the official repository
(stanfordmlgroup/chexpert-labeler @44ddeb3): ``pre`` =
``patterns/pre_negation_uncertainty.txt``, ``neg`` =
``patterns/negation.txt``, ``post`` =
``patterns/post_negation_uncertainty.txt``. Every id is either covered by a
rule in :mod:`.rules` (tested on a sentence written for it in
``tests/data/chexpert_patterns.json``) or listed in :data:`NOT_COVERED`.
"""
from .rules import RULES

__all__ = ['PATTERN_IDS', 'NOT_COVERED', 'covered_patterns']


def _ids(prefix, lines):
    return tuple(f'{prefix}:{n}' for n in lines.split())


#: every pattern line of the three official files
PATTERN_IDS = _ids('pre', '4 7 10 11 12 15 16 19 23') + _ids(
    'neg', '2 5 8 9 10 11 12 13 14 15 16 19 21 22 24 25 26 27 29 30 31 32 '
    '35 36 37 38 39 40 41 42 43 46 49 53 54 56 57 60 61 64 66 69 72 75 78 '
    '81 84 87 90 91 94 97 98 101 104 107 110 113 116 119 122 123 126 127 '
    '130 131 134 138 139 143 144 147 148 151 154 155 156') + _ids(
        'post',
        '4 5 8 9 14 15 16 17 20 22 23 24 25 26 27 29 30 33 34 37 38 40 '
        '43 44 47 52 53 54 55 56 60 61 64 67 70 73 76 79 82 85 86 89 92 96 99 '
        '102 105 108 111 114 115 118 121 124 127 130 133 134 137 140 143 149 '
        '150 151 152 155 156')

_INERT = 'cannot match: '
_PARSE = 'parse-error variant; '
#: pattern id -> why mmext has no rule (and what decides such text instead)
NOT_COVERED = {
    'pre:12':
    _PARSE + '"no new" with the mention as a compound modifier; '
    'the text is handled by the pre:10 rule (uncertain)',
    'pre:16':
    _PARSE + 'mention governing "area" in "no new area of X"; '
    'the text is handled by the pre:15 rule (uncertain)',
    'neg:13':
    _INERT + 'the converter emits no "conj:no" relation for '
    'report text',
    'neg:16':
    _INERT + 'tests a node attribute "dependency" that nodes do '
    'not have (it is an edge attribute)',
    'neg:27':
    _INERT + 'needs an official mention used as an adjective of '
    '"structure(s)"; none of the mention phrases is one',
    'neg:40':
    _INERT + 'needs "normal pulmonary vascularity" inside the '
    'mention "cardiac silhouette and vascularity", which cannot hold it',
    'neg:49':
    _PARSE + 'the mention governing "appear / remain" (inverted '
    'subject edge); the text is handled by the neg:41 rule (negated)',
    'neg:66':
    _PARSE + '"no" attached by advmod / dep / conj:or; which '
    'text yields it depends on the parser, the "no" rule decides instead',
    'neg:130':
    'parse-dependent: "without evidence seen for X" negates only '
    'if the parser makes "evidence" a dependent of "seen"; mmext stops the '
    '"without" scope at "seen" (positive)',
    'neg:131':
    'parse-dependent, as neg:130',
    'post:25':
    _INERT + 'the official cleaning rewrites "and/or" to "or" '
    'before parsing; the "or" rule (post:155/156) applies',
    'post:26':
    _INERT + 'as post:25',
    'post:27':
    _INERT + 'identical to pre:10, which runs first',
    'post:29':
    _INERT + 'an aux edge pointing from "may" to "represent" '
    '(inverted); "may represent X" is handled by the post:67 rule',
    'post:37':
    _INERT + 'its first node is "angle", which no mention phrase '
    'contains',
    'post:38':
    _INERT + 'tests an edge attribute "lemma" that edges do not '
    'have',
    'post:64':
    _PARSE + '"maybe due to X" with a dep edge from "maybe"; '
    'whether the parser makes that error decides; mmext treats "maybe" '
    'like "possibly" (uncertain)',
    'post:44':
    _PARSE + 'the mention governing "question"; "question X" '
    'and "question of X" are handled by the post:53 / post:52 rules',
}


def covered_patterns():
    """Pattern id -> name of the mmext rule that restates it."""
    return {pid: fn.__name__ for _, fn, covers in RULES for pid in covers}
