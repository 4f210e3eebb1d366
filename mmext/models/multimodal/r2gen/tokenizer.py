# Copyright (c) mmext contributors. All rights reserved.
"""R2Gen's word-level report tokenizer, with its vocabulary kept portable."""
import os
import os.path as osp
import re
from collections import Counter
from typing import Iterable, List, Optional, Sequence

from mmext.registry import TOKENIZER

__all__ = ['R2GenTokenizer', 'clean_report']

# R2Gen's class as written: inside [...] the text ``:-\[`` is a *range*
# (0x3A-0x5B), so it also deletes ``; < = > ? @ A-Z [`` and keeps ``-``.
_R2GEN_PUNCT = re.compile('[.,?;*!%^&_+():-\\[\\]{}]')
# What it meant: each listed character literally (``-`` escaped). A period
# between two digits (``1.5 cm``) is kept so numbers survive.
_FIXED_PUNCT = re.compile(r'[,?;*!%^&_+():\-\[\]{}]|(?<!\d)\.|\.(?!\d)')
_LIST_NUMBER = re.compile(r'(?:^|(?<=\s))[1-9]\.\s')
# built vocabularies by (file, mtime, size, threshold, dataset, clean mode):
# a config builds the tokenizer for the model and each data set, and on
# MIMIC-CXR (270k train reports) each build takes tens of seconds
_VOCAB_CACHE = {}


def _r2gen_split(text: str, dataset: str) -> List[str]:
    """R2Gen's report-level cleaning, chained str.replace calls and all
    (``'1. '`` is removed anywhere, e.g. inside ``'21. '``)."""
    if dataset == 'mimic_cxr':
        text = text.replace('\n', ' ')
        for _ in range(7):
            text = text.replace('__', '_')
        for _ in range(6):
            text = text.replace('  ', ' ')
        n_dots = 8
    else:
        n_dots = 3
    for _ in range(n_dots):
        text = text.replace('..', '.')
    text = text.replace('1. ', '')
    for k in '2345':
        text = text.replace(f'. {k}. ', '. ')
    for k in '2345':
        text = text.replace(f' {k}. ', '. ')
    return text.strip().lower().split('. ')


def _strip_quotes(sent: str) -> str:
    return sent.replace('"', '').replace('/', '').replace('\\', '') \
        .replace("'", '').strip().lower()


def clean_report(report: str,
                 dataset: str = 'iu_xray',
                 mode: str = 'r2gen') -> str:
    """Clean a report the R2Gen way: `` . ``-separated lowercase sentences
    without punctuation, ending with `` .``.

    Args:
        report (str): Raw report text.
        dataset (str): ``'iu_xray'`` or ``'mimic_cxr'`` (MIMIC also joins
            lines and collapses ``___`` placeholders). Default 'iu_xray'.
        mode (str): ``'r2gen'`` reproduces R2Gen exactly, including its
            regex range quirk and its empty-sentence check that never fires
            (``sent != []`` on a string), for comparable numbers.
            ``'fixed'`` deletes only the listed punctuation (keeps ``<=>@``,
            removes ``-``), keeps decimal points, removes list numbering only
            as a whole word and drops empty sentences. Default 'r2gen'.

    Returns:
        str
    """
    if mode == 'r2gen':
        sents = [
            _R2GEN_PUNCT.sub('', _strip_quotes(s))
            for s in _r2gen_split(report, dataset)
        ]
    elif mode == 'fixed':
        text = re.sub(r'\s+', ' ', report.replace('\n', ' '))
        text = re.sub(r'_+', '_', text)
        text = re.sub(r'\.{2,}', '.', text)
        text = _LIST_NUMBER.sub('', text).strip().lower()
        sents = [
            _FIXED_PUNCT.sub('', _strip_quotes(s))
            for s in re.split(r'\.\s', text)
        ]
        sents = [' '.join(s.split()) for s in sents]
        sents = [s for s in sents if s]
    else:
        raise ValueError(f"R2GenTokenizer: clean_mode must be 'r2gen' or "
                         f"'fixed', got {mode!r}")
    return ' . '.join(sents) + ' .'


@TOKENIZER.register_module()
class R2GenTokenizer:
    """Word tokenizer of R2Gen with a vocabulary that travels with the model.

    R2Gen (Chen et al., "Generating Radiology Reports via Memory-driven
    Transformer", EMNLP 2020) builds its vocabulary from the cleaned train
    reports: tokens counted at least ``threshold`` times (3 for IU X-ray, 10
    for MIMIC-CXR) plus ``<unk>``, sorted, ids from 1; id 0 is padding, BOS
    and EOS. Upstream rebuilds this from ``annotation.json`` every time it
    runs, so a checkpoint is only usable next to the exact data it was trained
    on; here the vocabulary can be given as a list (``vocab``), which is what
    the data sets put into the checkpoint meta and
    :func:`mmext.apis.restore_vocab_from_checkpoint` puts back.

    Args:
        ann_file (str, optional): R2Gen ``annotation.json``; the vocabulary
            is built from its ``train`` split when ``vocab`` is None.
        vocab (list[str], optional): Tokens in id order 1..V. Takes
            precedence over ``ann_file``.
        threshold (int): Minimum train count of a token. Default 3.
        dataset (str): ``'iu_xray'`` or ``'mimic_cxr'`` cleaning rules.
            Default 'iu_xray'.
        clean_mode (str): ``'r2gen'`` (exact upstream cleaning) or
            ``'fixed'``; see :func:`clean_report`. Default 'r2gen'.
        data_root (str, optional): Prefix of a relative ``ann_file``.

    Example:
        >>> tok = R2GenTokenizer(vocab=['.', '<unk>', 'clear', 'lungs'])
        >>> tok.encode('Lungs are clear.')  # 'are' is unknown
        [0, 4, 2, 3, 1, 0]
        >>> tok.decode([4, 2, 3, 1, 0, 3])
        'lungs <unk> clear .'
    """

    def __init__(self,
                 ann_file: Optional[str] = None,
                 vocab: Optional[Sequence[str]] = None,
                 threshold: int = 3,
                 dataset: str = 'iu_xray',
                 clean_mode: str = 'r2gen',
                 data_root: Optional[str] = None):
        if dataset not in ('iu_xray', 'mimic_cxr'):
            raise ValueError(f"R2GenTokenizer: dataset must be 'iu_xray' or "
                             f"'mimic_cxr', got {dataset!r}")
        self.dataset = dataset
        self.clean_mode = clean_mode
        self.threshold = threshold
        clean_report('', dataset, clean_mode)  # validates clean_mode
        if vocab is None:
            if ann_file is None:
                raise ValueError('R2GenTokenizer needs `vocab` (a token list) '
                                 'or `ann_file` (annotation.json to build it '
                                 'from)')
            if data_root and not osp.isabs(ann_file):
                ann_file = osp.join(data_root, ann_file)
            vocab = self.build_vocab(ann_file)
        vocab = list(vocab)
        if '<unk>' not in vocab:
            raise ValueError('R2GenTokenizer: vocab has no <unk> token '
                             f'({len(vocab)} tokens given)')
        self.vocab = vocab
        self.token2idx = {t: i + 1 for i, t in enumerate(vocab)}
        self.idx2token = {i + 1: t for i, t in enumerate(vocab)}
        self.unk_id = self.token2idx['<unk>']

    def build_vocab(self, ann_file: str) -> List[str]:
        """Tokens of the train split counted ``>= threshold``, + ``<unk>``,
        sorted (R2Gen's rule)."""
        stat = os.stat(ann_file)
        key = (osp.abspath(ann_file), stat.st_mtime_ns, stat.st_size,
               self.threshold, self.dataset, self.clean_mode)
        if key not in _VOCAB_CACHE:
            _VOCAB_CACHE[key] = self._count_vocab(ann_file)
        return list(_VOCAB_CACHE[key])

    def _count_vocab(self, ann_file: str) -> List[str]:
        # checked whole (report null, unreadable JSON, empty train...):
        # the tokenizer is built with the model, before any data set
        from mmext.datasets.validation import load_r2gen_annotation
        ann = load_r2gen_annotation(
            ann_file, 'R2GenTokenizer', need_train=True)
        counter = Counter()
        for entry in ann['train']:
            counter.update(self.clean(entry['report']).split())
        vocab = [t for t, c in counter.items() if c >= self.threshold]
        return sorted(vocab + ['<unk>'])

    @property
    def vocab_size(self) -> int:
        """Number of tokens (R2Gen's ``get_vocab_size``); the embedding has
        ``vocab_size + 1`` rows for id 0."""
        return len(self.vocab)

    def clean(self, report: str) -> str:
        """The cleaned report (see :func:`clean_report`)."""
        return clean_report(report, self.dataset, self.clean_mode)

    def encode(self, report: str) -> List[int]:
        """``[0] + ids + [0]`` of the cleaned report; unknown -> ``<unk>``."""
        return self.encode_cleaned(self.clean(report))

    def encode_cleaned(self, cleaned: str) -> List[int]:
        """:meth:`encode` of a report :meth:`clean` already returned."""
        ids = [self.token2idx.get(t, self.unk_id) for t in cleaned.split()]
        return [0] + ids + [0]

    __call__ = encode

    def decode(self, ids: Iterable[int]) -> str:
        """Tokens joined by spaces up to the first 0."""
        words = []
        for i in ids:
            i = int(i)
            if i == 0:
                break
            words.append(self.idx2token[i])
        return ' '.join(words)

    def batch_decode(self, ids_batch: Iterable[Iterable[int]]) -> List[str]:
        """:meth:`decode` for each row."""
        return [self.decode(ids) for ids in ids_batch]

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(vocab_size={self.vocab_size}, '
                f'dataset={self.dataset!r}, clean_mode={self.clean_mode!r})')
