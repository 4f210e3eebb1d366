# Copyright (c) mmext contributors. All rights reserved.
"""Base of the image-text data sets (Conceptual Captions, Hateful Memes,
MM-IMDb, UPMC Food-101): one sample = one image file + one text.

Every sample's ``data_info`` has ``img_path`` (absolute or relative to the
working directory), ``text`` (str), ``id`` (the record's own id, stable
across runs and filters) and, for the classification sets, ``gt_label``;
mmengine adds ``sample_idx`` (the position in this data set). Samples whose
image is missing are counted, reported in one warning with examples, and
skipped (``on_missing='skip'``) or refused (``on_missing='error'``); they
are never dropped without a word. When no image at all exists, or the
annotation file has no record, the data set refuses to build (mmengine
would fail later with ``need at least one array to concatenate``).

Annotation files are read with bounds that upstream's readers lack
(``open`` + ``json.load`` / ``csv.reader`` give a raw
``UnicodeDecodeError``, ``RecursionError`` or ``_csv.Error`` without the
file name): UTF-8 or BOM'd UTF-16/32 text of at most
:data:`MAX_ANNOTATION_BYTES`, JSON nested at most :data:`MAX_JSON_DEPTH`
levels, CSV fields of at most :data:`MAX_CSV_FIELD` characters. Every
problem is a :class:`RecordError`, one line naming the file and the line
or id, the cause and the fix.
"""
import json
import os
import os.path as osp
import re

import numpy as np
from mmengine.logging import print_log
from mmpretrain.datasets import BaseDataset

from mmext.utils.fileio import InputFileError, read_text_file

__all__ = [
    'ImageTextDataset', 'RecordError', 'MissingImagesError', 'inside',
    'plain_file_name', 'read_annotation', 'parse_json', 'show', 'json_type',
    'describe', 'first_few', 'MAX_ANNOTATION_BYTES', 'MAX_JSON_DEPTH',
    'MAX_CSV_FIELD'
]

#: largest annotation file read (the real ones are at most a few MB;
#: the Conceptual Captions TSVs are streamed line by line instead)
MAX_ANNOTATION_BYTES = 256 << 20
#: deepest JSON nesting accepted (the real records nest 2-3 levels)
MAX_JSON_DEPTH = 64
#: longest CSV field in characters (Python's csv default is 131072)
MAX_CSV_FIELD = 1 << 20


class RecordError(InputFileError):
    """An annotation file or record is malformed (the message names file
    and line / id, the cause and the fix)."""


class MissingImagesError(RecordError, FileNotFoundError):
    """Images of the annotation are missing (``on_missing='error'``), or
    none of them exists."""


def show(value, limit=60):
    """``repr(value)`` cut to about ``limit`` characters (one line)."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + '...'
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'


def json_type(value):
    """The JSON name of a parsed value's type, for messages."""
    if isinstance(value, bool):
        return 'a boolean'
    for kind, name in ((str, 'a string'), (int, 'an integer'),
                       (float, 'a number'), (list, 'a list'), (dict,
                                                               'an object')):
        if isinstance(value, kind):
            return name
    return 'null' if value is None else type(value).__name__


def describe(value, limit=40):
    """``'an integer 5'``, ``'a list [1, 2]'``, ``'null'``: a parsed
    value's JSON type and (cut) value, for messages."""
    kind = json_type(value)
    return kind if value is None else f'{kind} {show(value, limit)}'


def first_few(values, n=5):
    """``['a', 'b'] (2)`` or ``['a', ...] and 7 more`` for messages."""
    values = list(values)
    shown = ', '.join(show(v, 30) for v in values[:n])
    more = f' and {len(values) - n} more' if len(values) > n else ''
    return f'[{shown}]{more}'


def plain_file_name(name):
    """True for a non-empty file name without folders, NUL or characters
    the file system cannot encode."""
    if not isinstance(name, str) or name in ('', '.', '..') or \
            '/' in name or '\\' in name or '\0' in name:
        return False
    try:
        os.fsencode(name)
    except UnicodeEncodeError:
        return False
    return True


def inside(root, relative):
    """``root/relative`` if it stays inside ``root``, else None (absolute
    paths, ``..`` components, drive letters and unencodable names are
    refused)."""
    if not isinstance(relative, str) or not relative or \
            osp.isabs(relative) or '\\' in relative or '\0' in relative:
        return None
    try:
        os.fsencode(relative)
    except UnicodeEncodeError:
        return None
    joined = osp.normpath(osp.join(root, relative))
    base = osp.normpath(root)
    if joined != base and joined.startswith(base + os.sep):
        return joined
    return None


def read_annotation(name, path):
    """The text of an annotation file (UTF-8, or UTF-8/16/32 with a BOM),
    at most :data:`MAX_ANNOTATION_BYTES`.

    Raises:
        RecordError: Not a regular file, too large or not decodable; the
            message names the file, the byte and the line.
    """
    try:
        return read_text_file(path, f'{name}: annotation file',
                              MAX_ANNOTATION_BYTES)
    except InputFileError as e:
        raise RecordError(str(e)) from None


_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')


def _deeper_than(value, limit):
    """True when a parsed JSON value nests lists / objects more than
    ``limit`` levels (level by level: no recursion of its own)."""
    level, depth = [value], 1
    while level:
        if depth > limit:
            return True
        level = [
            child for v in level
            for child in (v.values() if isinstance(v, dict) else v)
            if isinstance(child, (list, dict))
        ]
        depth += 1
    return False


def _deep_line(text, first_line):
    """Line of the first bracket of ``text`` nested more than
    :data:`MAX_JSON_DEPTH` levels (only run on a refused file)."""
    blank = _STRING.sub(lambda m: ' ' * len(m.group()), text)
    codes = np.frombuffer(blank.encode('latin-1', 'replace'), np.uint8)
    step = np.isin(codes, (91, 123)).astype(np.int32) - np.isin(
        codes, (93, 125))  # [ { minus ] }
    deep = np.flatnonzero(np.cumsum(step) > MAX_JSON_DEPTH)
    at = int(deep[0]) if deep.size else len(text)
    return first_line + text.count('\n', 0, at)


def parse_json(where, text, fix, first_line=1):
    """``json.loads(text)`` with one-line errors.

    Values nested more than :data:`MAX_JSON_DEPTH` levels are refused
    whether the parser manages them (checked after parsing) or runs out of
    stack (its ``RecursionError``), so the outcome does not depend on the
    caller's stack depth.

    Args:
        where (str): ``'<Name>: <file>'``, the start of each message.
        text (str): The JSON text.
        fix (str): What the file should hold, ending each message.
        first_line (int): Line number of ``text``'s first line in the
            file (JSON lines). Defaults to 1.

    Raises:
        RecordError: Invalid JSON, too deep or a number too long; the
            message names the line.
    """
    try:
        value = json.loads(text)
        # a value needs more brackets than levels: most skip the walk
        deep = text.count('[') + text.count('{') > MAX_JSON_DEPTH and \
            _deeper_than(value, MAX_JSON_DEPTH)
    except json.JSONDecodeError as e:
        raise RecordError(f'{where}:{first_line + e.lineno - 1}: not valid '
                          f'JSON ({e.msg}, column {e.colno}); {fix}') from None
    except RecursionError:
        deep = True
    except ValueError as e:  # e.g. an integer of 5000 digits
        loc = '' if '\n' in text.rstrip() else f':{first_line}'
        raise RecordError(f'{where}{loc}: not valid JSON '
                          f'({show(str(e), 100)}); {fix}') from None
    if deep:
        raise RecordError(f'{where}:{_deep_line(text, first_line)}: JSON '
                          f'nested deeper than {MAX_JSON_DEPTH} levels; {fix}')
    return value


def _shown_path(path, root):
    rel = path if path.startswith('<') else osp.relpath(path, root)
    return rel if rel.isprintable() else show(rel)


class ImageTextDataset(BaseDataset):
    """Shared bookkeeping of the image-text data sets.

    Subclasses implement :meth:`load_records` returning data infos with an
    ``img_path``; this class checks the images and reports the missing ones.

    Args:
        data_root (str): Data set folder (see the subclass's ``LAYOUT``).
        on_missing (str): 'skip' (warn with the count, keep the rest) or
            'error' when image files are missing. Defaults to 'skip'. When
            none exists, the data set is refused either way.
        check_images (bool): Look for every image when the data set is
            built. Defaults to True.
        **kwargs: Passed to :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``lazy_init``, ``indices``, ...).
    """

    LAYOUT = ''
    #: the fix named when no image exists
    MISSING_FIX = 'check data_root'

    def __init__(self,
                 data_root,
                 ann_file='',
                 on_missing='skip',
                 check_images=True,
                 **kwargs):
        if on_missing not in ('skip', 'error'):
            raise ValueError(f"{type(self).__name__}: on_missing must be "
                             f"'skip' or 'error', got {on_missing!r}")
        if not osp.isdir(data_root):
            raise FileNotFoundError(
                f'{type(self).__name__}: {data_root} is not a folder; '
                f'expected layout:\n{self.LAYOUT}')
        self.on_missing = on_missing
        self.check_images = check_images
        self.missing = []  # (id, path) of the skipped samples
        super().__init__(ann_file=ann_file, data_root=data_root, **kwargs)

    def load_records(self):
        """Return the data infos before the image check."""
        raise NotImplementedError

    def annotation_source(self):
        """The annotation file(s), for messages."""
        return self.ann_file

    def load_data_list(self):
        self.missing = []  # subclasses may add (id, path) of lost files
        records = self.load_records()
        total = len(records) + len(self.missing)
        if not total:
            raise RecordError(
                f'{type(self).__name__}: {self.annotation_source()} has no '
                'records; check it is the right file')
        if self.check_images:
            existing = self._existing_files(records)
            kept = []
            for rec in records:
                folder, name = osp.split(rec['img_path'])
                if name in existing.get(folder, ()):
                    kept.append(rec)
                else:
                    self.missing.append((rec['id'], rec['img_path']))
            records = kept
        if self.missing:
            self._report_missing(total, len(records))
        return records

    @staticmethod
    def _existing_files(records):
        """{folder: names of its files}: one listdir per folder instead of
        one stat per sample (3.3M for Conceptual Captions). FIFOs, devices
        and folders are no image files."""
        existing = {}
        for folder in {osp.dirname(rec['img_path']) for rec in records}:
            try:
                with os.scandir(folder) as it:
                    existing[folder] = {e.name for e in it if e.is_file()}
            except (OSError, ValueError):  # absent, no folder, no access
                existing[folder] = set()
        return existing

    def _report_missing(self, total, kept):
        name, root = type(self).__name__, self.data_root
        if not kept:
            first = _shown_path(self.missing[0][1], root)
            raise MissingImagesError(
                f'{name}: 0 of {total} images exist under {root} (first '
                f'missing: {first}): {self.MISSING_FIX}')
        shown = ', '.join(f'{show(i, 30)} ({_shown_path(p, root)})'
                          for i, p in self.missing[:3])
        msg = (f'{name}: {len(self.missing)} of {total} samples miss '
               f'their file in {root}, e.g. {shown}')
        if self.on_missing == 'error':
            raise MissingImagesError(
                f'{msg}; restore the images or pass on_missing=\'skip\'')
        print_log(f'{msg}; skipped (see .missing)', logger='current', level=30)

    @property
    def num_missing(self):
        """Number of samples skipped because their image is missing."""
        return len(self.missing)

    def extra_repr(self):
        return [
            f'Root of dataset: \t{self.data_root}',
            f'Missing images:  \t{self.num_missing}'
        ]
