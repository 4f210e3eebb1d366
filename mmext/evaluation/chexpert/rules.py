# Copyright (c) mmext contributors. All rights reserved.
"""Negation and uncertainty rules of the CheXpert labeler as word windows.

The official labeler (stanfordmlgroup/chexpert-labeler,
``stages/classify.py``) parses each sentence (Bllip + Stanford universal
dependencies), propagates a few edges through conjunctions and ``of``
phrases (NegBio ``propagator.py``), then tests every token of a mention
against three semgrex pattern files, in this order:

1. ``patterns/pre_negation_uncertainty.txt`` (``pre:N`` below) -> uncertain,
2. ``patterns/negation.txt`` (``neg:N``) -> negative (skipped for a mention
   modified by ``new``; a pattern whose ``=key`` node is itself negated,
   e.g. "has *not* resolved", does not count),
3. ``patterns/post_negation_uncertainty.txt`` (``post:N``) -> uncertain,

else the mention is positive. ``N`` is the pattern's line number in the
official file. Without a parser, mmext restates each pattern as a cue that
must reach the mention through a noun phrase: words that can sit inside a
noun phrase or a list of them (adjectives, nouns, ``,`` ``and`` ``or``, and
``of`` chains where NegBio propagates negation), but no verb, other
preposition or clause word. Each rule below names the patterns it covers;
:data:`.coverage.NOT_COVERED` lists the rest with the reason. Where a
pattern's match depends on the parse (``versus`` as a conjunction,
``rule out`` with ``out`` as a preposition), the rule follows the parse the
pattern was written for. Agreement is tested on one sentence or more per
covered pattern in ``tests/data/chexpert_patterns.json``.

Approximated (the parse decides, a window cannot):

* the official rules test each token of a mention; here the mention's
  left / right context is tested as a whole, with token-specific patterns
  (``silhouette``, the heart words of the stable-heart rules, ``vascular
  congestion``) checked on the mention's words;
* a conjunction that joins clauses rather than noun phrases is recognised
  only by the next word ("no effusion, and the heart is enlarged": a
  determiner after ``and`` / ``,`` / ``or`` starts a new clause);
* an ``X, Y, or Z`` list makes all three uncertain; ``X, Y versus Z`` only
  Y and Z (the parser's attachment of the first item varies);
* a single-token mention as the subject of "is within normal limits" is
  negated here; with a copula the official patterns reach the subject only
  through a second mention token ("heart size", "cardiac silhouette").

Official behaviour kept although surprising: "X is not seen", "likely X",
"X likely reflects Y", "suggestive of X", "consistent with X" and "there
may be X" are positive (no pattern); "X is stable" is uncertain only for
heart / mediastinum words; a mention modified by "new" is never negated.
"""
import re

__all__ = ['classify', 'tokenize', 'RULES']

PRE_UNCERTAIN, NEGATION, POST_UNCERTAIN = 'pre', 'neg', 'post'

# words that end a noun phrase: verbs, auxiliaries, prepositions other than
# "of", clause words, punctuation
_STOP = (
    'is are was were be been being am has have had do does did may might can '
    'could would should will shall must cannot seen noted identified present '
    'demonstrated demonstrates demonstrate visualized appears appear appeared '
    'remains remain remained represents represent representing reflect '
    'reflects reflecting suggest suggests suggesting suggestive compatible '
    'consistent concerning secondary due related likely measures measuring '
    'projects projecting terminates terminating overlies overlying extends '
    'extending persists persist obscures obscuring obscured removed resolved '
    'cleared excluded in on at within from since by near along over into '
    'through after before above below under with without for to than versus '
    'vs as per via across between beyond toward towards following during '
    'despite around which that who where when there but however although '
    'though whereas while except otherwise if because given ; : ( ) . ? !'
).split()
_STOP_ALT = '|'.join(re.escape(w) for w in _STOP)
# a new clause subject after a coordinator ends the phrase too
_NEW_CLAUSE = r'(?:and|,|or) (?:the|there|a|an) '
_W = rf'(?!(?:{_STOP_ALT}) )(?!{_NEW_CLAUSE})[^ ]+ '  # with "of" chains
_WL = rf'(?!(?:{_STOP_ALT}|of) )(?!{_NEW_CLAUSE})[^ ]+ '  # lists, no "of"
_WN = rf'(?!(?:{_STOP_ALT}|of|and|or|,) )[^ ]+ '  # one noun phrase
_WS = rf'(?!(?:{_STOP_ALT}|,) )[^ ]+ '  # subject before its verb
NP, LIST, NOUN, SUBJ = f'(?:{_W})*', f'(?:{_WL})*', f'(?:{_WN})*', \
    f'(?:{_WS})*?'
_BE = r'(?:is|are|was|were) '
_COP = r'(?:(?:is|are|was|were|appears?|appeared|remains?|remained|looks?|' \
    r'seems?) )?'
_ADV = r'(?:(?:now|otherwise|again|overall|still|also|grossly|' \
    r'essentially|currently|stably|both|all|top|upper|high|low|' \
    r'borderline) )*'
_MODAL = r'(?:may|might|would|could|can|possibly|maybe)'

# mention words whose "stable / unchanged / similar to prior" is uncertain
_HEART = {
    'cardiomediastinal', 'pericardial', 'mediastinal', 'mediastinum',
    'cardiomediastinum', 'contour', 'contours', 'configuration', 'silhouette',
    'silhouettes', 'size', 'heart', 'shadow'
}
_EDEMA_HEDGED = {
    'vascular congestion', 'pulmonary congestion', 'indistinctness',
    'vascular prominence'
}

_TOKEN = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*|[^\sa-z0-9]")


def tokenize(sentence):
    """``(word, start, end)`` for every word and punctuation mark."""
    return [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(sentence)]


class _Mention:
    """A mention with the text left and right of it, space-joined."""

    def __init__(self, tokens, start, end, phrase):
        idx = [
            i for i, (_, s, e) in enumerate(tokens) if s < end and start < e
        ]
        words = [w for w, _, _ in tokens]
        self.phrase = phrase.strip()
        self.words = set(words[idx[0]:idx[-1] + 1]) if idx else set()
        first, last = (idx[0], idx[-1] + 1) if idx else (0, 0)
        self.left = ' ' + ' '.join(words[:first]) + ' '
        self.right = ' '.join(words[last:]) + ' '
        # "..., and the heart is": the mention opens a new clause
        self.new_clause = bool(idx) and words[first] in ('the', 'a', 'an') \
            and self.left.endswith((' and ', ' , ', ' or '))

    def before(self, pattern):
        """``pattern`` ends right before the mention (left context)."""
        return not self.new_clause and re.search(rf'(?<= )(?:{pattern})$',
                                                 self.left) is not None

    def after(self, pattern):
        """``pattern`` starts right after the mention (right context)."""
        return re.match(pattern, self.right) is not None


RULES = []


def _rule(stage, *covers):

    def register(fn):
        RULES.append((stage, fn, covers))
        return fn

    return register


# ---- 1. pre-negation uncertainty -------------------------------------------
@_rule(PRE_UNCERTAIN, 'pre:4', 'pre:7', 'post:22')
def cannot_exclude(m):
    """'cannot exclude X', 'X cannot be excluded', 'X is not excluded'."""
    return m.before(
        rf'(?:cannot|can not) (?:be )?(?:entirely )?'
        rf'exclud(?:e|ed|ing) {LIST}') or m.after(
            rf'{SUBJ}(?:(?:cannot|can not) be|(?:{_BE})?not(?: be)?) '
            r'(?:entirely |completely )?excluded ')


@_rule(PRE_UNCERTAIN, 'pre:10', 'pre:11', 'pre:15')
def no_new(m):
    """'no new X', 'no new area of X', 'no evidence of new X'."""
    found = re.search(rf'(?<= )no ({NP})$', m.left)
    return found is not None and ' new ' in ' ' + found.group(1)


@_rule(PRE_UNCERTAIN, 'pre:19', 'pre:23', 'post:40')
def cannot_rule_out(m):
    """'cannot rule out X', 'no evidence to rule out X'."""
    return m.before(rf'(?:cannot|can not|no evidence to) rule out {LIST}')


# ---- 2. negation ------------------------------------------------------------
@_rule(NEGATION, 'neg:2', 'neg:5', 'neg:14', 'neg:25', 'neg:26', 'neg:29',
       'neg:31', 'neg:32', 'neg:54', 'neg:72', 'neg:75', 'neg:78', 'neg:81',
       'neg:84', 'neg:87', 'neg:90', 'neg:91', 'neg:94', 'neg:97', 'neg:98',
       'neg:101', 'neg:107', 'neg:110', 'neg:113', 'neg:119', 'neg:147',
       'neg:148', 'neg:154', 'neg:155', 'neg:156')
def no_or_without(m):
    """'no X', 'without X', 'no evidence / focus / area of X', lists, and
    'no NN to suggest / explain X'."""
    return m.before(rf'(?:no|not|without) {NP}') or m.before(
        rf'no {NP}to (?:suggest|explain|diagnose) {LIST}') or m.before(
            rf'no moderate to {NP}')


@_rule(NEGATION, 'neg:53', 'neg:56', 'neg:57', 'neg:60', 'neg:61', 'neg:64')
def negating_head(m):
    """'free / clear / history / resolution / removal of X', 'negative for
    X', 'rather than X', 'rule out X', 'exclude X', 'X is excluded'."""
    return m.before(
        rf'(?:(?<!not )(?:free|clear|clearing)|history|disappearance|'
        rf'resolution|drainage|removal) of {LIST}') or m.before(
            rf'(?:negative for|rather than|rule out|'
            rf'exclud(?:e|es|ed|ing)) {LIST}') or m.after(
                rf'{SUBJ}(?:{_BE}|has been |have been )excluded ')


@_rule(NEGATION, 'neg:8', 'neg:9', 'neg:10', 'neg:11', 'neg:12', 'neg:21',
       'neg:22', 'neg:24', 'neg:46', 'neg:134', 'neg:138', 'neg:139')
def normal(m):
    """'normal X', 'normal appearance of X', 'X is / appears / remains
    (top) normal / unremarkable'."""
    return m.before(rf'(?:normal|unremarkable) {NP}') or m.after(
        rf'{SUBJ}{_COP}{_ADV}(?:normal|unremarkable) ')


@_rule(NEGATION, 'neg:15', 'neg:35', 'neg:36', 'neg:37', 'neg:38', 'neg:39',
       'neg:41', 'neg:42', 'neg:43')
def within_normal_limits(m):
    """'X (is / appears) within normal limits', 'X is at the upper limits
    of normal'."""
    return m.after(
        rf'{SUBJ}(?:(?:is|are|was|were|appears?|appeared|remains?|'
        r'remained|demonstrated|shown) )*(?:at|within) (?:the )?'
        r'(?:normal limits?|upper limits? of normal|upper normal limits?) ')


@_rule(NEGATION, 'neg:30', 'neg:69', 'neg:104', 'neg:116', 'neg:122',
       'neg:123', 'neg:126', 'neg:127', 'neg:143', 'neg:144', 'neg:151')
def negating_predicate(m):
    """'X is absent / has resolved / is not enlarged / is no longer seen /
    (has been) removed / has cleared / was previously demonstrated', 'X
    with interval resolution', 'X but clear'."""
    return m.after(
        rf'{SUBJ}(?:'
        rf'{_BE}(?:now )?absent|'
        rf'(?:has|have|had) (?:(?:since|now|completely|nearly|largely) )*'
        rf'resolved|'
        rf'{_BE}not (?:significantly )?enlarged|'
        rf'{_BE}no longer seen|'
        rf'(?:{_BE}|has been |have been )previously '
        rf'(?:demonstrated|visualized)|'
        rf'(?:(?:has|have|had|is|are|was|were|been|since|now|subsequently) '
        rf')*removed|'
        rf'(?:has|have|had) (?:(?:since|now|largely|completely) )*cleared|'
        rf'with interval resolution) ') or m.after(
        r'(?:, (?:now )?cleared|(?:but|yet) (?:otherwise )?clear) ') or \
        m.before(rf'removed {NOUN}')


@_rule(NEGATION, 'neg:19')
def obscured_silhouette(m):
    """'(opacity) obscures / obscuring the cardiac silhouette'."""
    return bool(m.words & {'silhouette', 'silhouettes'}) and m.before(
        rf'(?:obscures|obscuring|obscure|obscured the|obscured a) {NOUN}')


# ---- 3. post-negation uncertainty ------------------------------------------
@_rule(POST_UNCERTAIN, 'post:4', 'post:5', 'post:8', 'post:9', 'post:14',
       'post:15', 'post:16', 'post:17', 'post:20')
def stable_heart(m):
    """'stable / unchanged heart size', 'the cardiac silhouette is stable /
    has not changed / is similar to prior'."""
    return bool(m.words & _HEART) and (
        m.before(rf'(?:stable|unchanged|stable appearance of) {NOUN}')
        or m.after(rf'{SUBJ}(?:{_BE}{_ADV}(?:stable|unchanged|similar to '
                   rf'(?:the )?prior)|(?:(?:has|have|had|is|are|was|were) )?'
                   rf'not (?:been )?changed|similar to (?:the )?prior) '))


@_rule(POST_UNCERTAIN, 'post:23', 'post:24', 'post:30', 'post:43', 'post:47',
       'post:52', 'post:53', 'post:54', 'post:60', 'post:61', 'post:67',
       'post:70', 'post:73', 'post:76', 'post:79', 'post:82', 'post:85',
       'post:86', 'post:89', 'post:92', 'post:99', 'post:124', 'post:127',
       'post:130', 'post:137')
def hedge_before(m):
    """'possible X', 'suspicious / concerning for X', 'may represent X',
    'may be X', 'secondary to X', 'compatible with X' (with a copula),
    'differential diagnosis includes X', 'correlate clinically for X'."""
    return m.before('|'.join([
        rf'(?:possible|possibly|presumably|probable|questionable|suspect|'
        rf'suspected|suspicious|maybe|question|favor|favors|favoring|'
        rf'consider|considered|considering|suspects) {LIST}',
        rf'(?:question|suggestion) of {LIST}',
        rf'(?:suspicious|worrisome|concerning|concern|suspicion) for {LIST}',
        rf'{_MODAL} (?:also )?(?:represent|reflect|indicate|include)'
        rf'(?:s|ed|ing)? (?:the presence of )?{LIST}', rf'secondary to {LIST}',
        rf'{_MODAL} (?:be )?(?:also )?(?:due|related) to {LIST}',
        rf'(?:is|are|was|were|be|could|may|would) {_ADV}compatible with '
        rf'{LIST}', rf'(?:may|might|can|could) (?:be )?consistent with {LIST}',
        rf'differential diagnosis (?:includes|include) {LIST}',
        rf'(?:correlate|correlated) clinically for (?:(?:evidence|signs?|'
        rf'symptoms?) of )?{LIST}', rf'correlation for symptoms? of {LIST}',
        rf'(?<!there )(?:may|might|would|could) (?:also )?be {LIST}'
    ]))


@_rule(POST_UNCERTAIN, 'post:55', 'post:56', 'post:96', 'post:105', 'post:108',
       'post:111', 'post:114', 'post:115', 'post:118', 'post:121', 'post:133',
       'post:134', 'post:140', 'post:143')
def hedge_after(m):
    """'X is suspected / possible / may be present / poorly evaluated / not
    well visualized / obscured / not appreciated', 'X could appear', 'X may
    have this appearance', 'obscured X'."""
    return m.after(
        rf'{SUBJ}(?:{_BE}{_ADV}(?:suspected|possible)|suspected|'
        rf'{_MODAL} (?:also )?(?:be )?present|'
        rf'{_BE}(?:poorly|incompletely) evaluated|'
        rf'(?:{_BE})?not (?:well )?(?:visualized|evaluated)|'
        rf'(?:{_BE})?(?:partially |partly )?obscured|'
        rf'(?:could|may|might|can) appear|'
        rf'{_BE}not (?:clearly seen|appreciated)|'
        rf'(?:may|might|could) (?:also )?have this appearance) ') or \
        m.before(rf'obscur(?:e|es|ed|ing) {LIST}')


@_rule(POST_UNCERTAIN, 'post:102')
def borderline_heart_size(m):
    """'borderline heart size'."""
    return m.phrase == 'heart size' and m.before(rf'borderline {NOUN}')


@_rule(POST_UNCERTAIN, 'post:149', 'post:150', 'post:151', 'post:152')
def hedged_edema_phrase(m):
    """'vascular / pulmonary congestion', 'indistinctness', 'vascular
    prominence' are uncertain unless negated."""
    return m.phrase in _EDEMA_HEDGED


@_rule(POST_UNCERTAIN, 'post:33', 'post:34', 'post:155', 'post:156')
def alternatives(m):
    """'X or Y', 'X versus Y': both uncertain."""
    return m.before(rf'(?:or|versus|vs) {NOUN}') or m.after(
        rf'{NOUN}(?:(?:, (?:{_WN})+)*(?:, )?or|versus|vs) ')


def _negation_blocked(m):
    # official match_neg skips a mention modified by "new"
    return m.before(rf'new {NOUN}')


def classify(tokens, start, end, phrase):
    """Official stage of one mention: ``'pre'``/``'post'`` uncertain,
    ``'neg'`` negated, or None (positive).

    Args:
        tokens (list[tuple]): :func:`tokenize` output of the sentence.
        start, end (int): Character span of the mention.
        phrase (str): The mention phrase that matched.

    Returns:
        str | None: The first stage whose rule fires.
    """
    mention = _Mention(tokens, start, end, phrase)
    for stage, fn, _ in RULES:
        if stage == NEGATION and _negation_blocked(mention):
            continue
        if fn(mention):
            return stage
    return None
