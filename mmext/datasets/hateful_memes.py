# Copyright (c) mmext contributors. All rights reserved.
"""The Hateful Memes challenge data set (Kiela et al., NeurIPS 2020)."""
import io
import os
import os.path as osp

from mmengine.logging import print_log

from mmext.registry import DATASETS
from .image_text import (ImageTextDataset, RecordError, describe, inside,
                         json_type, parse_json, read_annotation, show)

__all__ = ['HatefulMemes']

#: (field, check, what is expected) of each record
_FIELDS = (
    ('id',
     lambda v: isinstance(v,
                          (str, int)) and not isinstance(v, bool) and v != '',
     'a non-empty string or an integer like "01235"'),
    ('img', lambda v: isinstance(v, str) and v != '',
     'a relative image path like "img/01235.png"'),
    ('text', lambda v: isinstance(v, str), 'a string'),
)


@DATASETS.register_module()
class HatefulMemes(ImageTextDataset):
    """Hateful Memes: binary (0 not hateful, 1 hateful) meme classification.

    Reads the challenge layout (see :attr:`LAYOUT`): one JSON object per
    line with ``id``, ``img`` ("img/42953.png"), ``label`` and ``text``.
    ``split`` names one file or several (read in order), e.g. the ViLBERT
    thesis code's validation set is ``['dev_seen', 'dev_unseen']``: 1040
    lines, but only 640 distinct ids, because the two dev files share 400
    memes (measured on the release's files; the five files together hold
    12140 distinct memes). Upstream trains and evaluates on such repeats;
    here a repeated id is found, and its identical copies are dropped with a
    warning (``on_duplicate='drop'``), kept (``'keep'``) or refused
    (``'error'``); two different records with the same id are always an
    error.

    A file whose records have no ``label`` at all (the unlabelled test
    release) gives samples without ``gt_label``, for prediction only; a
    file where only some records lack it is an error.

    ``data_info`` keys: ``img_path``, ``text``, ``id`` (the record's id),
    ``gt_label`` (0 / 1, when labelled), ``source`` (the file's split
    name); mmengine adds ``sample_idx``.

    Args:
        data_root (str): Folder with ``img/`` and the ``.jsonl`` files.
        split (str | Sequence[str]): File name(s) without ``.jsonl``:
            'train', 'dev_seen', 'dev_unseen', 'test_seen', 'test_unseen'
            (or any other ``<name>.jsonl`` there). Defaults to 'train'.
        on_duplicate (str): 'drop', 'keep' or 'error'. Defaults to 'drop'.
        **kwargs: See :class:`ImageTextDataset` (``on_missing``,
            ``pipeline``, ...).

    Example:
        >>> from mmext.testing import make_hateful_memes
        >>> root = make_hateful_memes('work_dirs/ex_hm')
        >>> ds = HatefulMemes(str(root), split='train')
        >>> sorted(ds.get_data_info(0))
        ['gt_label', 'id', 'img_path', 'sample_idx', 'source', 'text']
    """

    METAINFO = {'classes': ('not hateful', 'hateful')}
    SPLITS = ('train', 'dev_seen', 'dev_unseen', 'test_seen', 'test_unseen')
    LAYOUT = (
        'data/hateful_memes/ (the challenge release)\n'
        '├── img/01235.png ...  (12140 memes)\n'
        '├── train.jsonl        ({"id": "01235", "img": "img/01235.png", '
        '"label": 0, "text": "..."} per line; 8500)\n'
        '├── dev_seen.jsonl     (500)    dev_unseen.jsonl  (540)\n'
        '└── test_seen.jsonl    (1000)   test_unseen.jsonl (2000)')

    def __init__(self,
                 data_root,
                 split='train',
                 on_duplicate='drop',
                 **kwargs):
        if on_duplicate not in ('drop', 'keep', 'error'):
            raise ValueError("HatefulMemes: on_duplicate must be 'drop', "
                             f"'keep' or 'error', got {on_duplicate!r}")
        self.split = [split] if isinstance(split, str) else list(split)
        self.on_duplicate = on_duplicate
        self.num_duplicates = 0
        super().__init__(data_root, **kwargs)

    def annotation_source(self):
        return ', '.join(
            osp.join(self.data_root, f'{name}.jsonl') for name in self.split)

    def _read_file(self, name):
        path = osp.join(self.data_root, f'{name}.jsonl')
        if not osp.isfile(path):
            found = sorted(f[:-6] for f in os.listdir(self.data_root)
                           if f.endswith('.jsonl'))
            raise FileNotFoundError(
                f'HatefulMemes: no {name}.jsonl in {self.data_root} (found '
                f'{found}); expected layout:\n{self.LAYOUT}')
        records = []
        text = read_annotation('HatefulMemes', path)
        # universal newlines as text mode; JSON strings hold no raw CR / LF
        for line_no, line in enumerate(io.StringIO(text, newline=None), 1):
            if line.strip():
                records.append(self._parse(path, line_no, line, name))
        if not records:
            raise RecordError(
                f'HatefulMemes: {path} has no records; expected one JSON '
                'object per line ({"id", "img", "label", "text"})')
        labelled = [r for r in records if 'gt_label' in r]
        if labelled and len(labelled) != len(records):
            first = next(r for r in records if 'gt_label' not in r)
            raise RecordError(
                f'HatefulMemes: {path}:{first["line"]}: no "label" while '
                'other records of the file have one; add it or remove the '
                'labels of the whole file (prediction only)')
        if not labelled:
            print_log(
                f'HatefulMemes: {name}.jsonl has no labels: samples '
                'for prediction only',
                logger='current')
        return records

    @staticmethod
    def _parse(path, line_no, line, name):
        where = f'HatefulMemes: {path}:{line_no}'
        obj = parse_json(f'HatefulMemes: {path}', line.rstrip('\r\n'),
                         'one JSON object per line '
                         'expected', line_no)
        if not isinstance(obj, dict):
            raise RecordError(f'{where}: a JSON object expected, found '
                              f'{json_type(obj)}')
        lost = [k for k in ('id', 'img', 'text') if k not in obj]
        if lost:
            raise RecordError(f'{where}: missing field(s) {lost}; each line '
                              'needs "id", "img", "text" (and "label")')
        for field, ok, expected in _FIELDS:
            if not ok(obj[field]):
                raise RecordError(
                    f'{where}: field "{field}" is '
                    f'{describe(obj[field])}, expected {expected}')
        rec = dict(
            id=obj['id'],
            img=obj['img'],
            text=obj['text'],
            source=name,
            line=line_no,
            file=path)
        label = obj.get('label')
        if label is not None:
            if isinstance(label, bool) or not isinstance(label, (int, float)) \
                    or label not in (0, 1):
                raise RecordError(f'{where}: label {show(label, 40)} is not '
                                  '0 or 1')
            rec['gt_label'] = int(label)
        return rec

    def load_records(self):
        seen, data_list = {}, []
        for name in self.split:
            for rec in self._read_file(name):
                key = str(rec['id'])
                if key in seen:
                    first = seen[key]
                    same = all(
                        first.get(k) == rec.get(k)
                        for k in ('img', 'text', 'gt_label'))
                    if not same or self.on_duplicate == 'error':
                        what = 'differs from' if not same else 'repeats'
                        raise RecordError(
                            f'HatefulMemes: {rec["file"]}:{rec["line"]}: id '
                            f'{show(rec["id"], 40)} {what} {first["file"]}:'
                            f'{first["line"]}; remove one of them' +
                            ('' if not same else " or pass on_duplicate="
                             "'drop'"))
                    self.num_duplicates += 1
                    if self.on_duplicate == 'drop':
                        continue
                else:
                    seen[key] = rec
                data_list.append(rec)
        if self.num_duplicates:
            action = 'dropped' if self.on_duplicate == 'drop' else 'kept'
            print_log(
                f'HatefulMemes: {self.num_duplicates} repeated ids '
                f'(identical records) in {self.split}: {action}',
                logger='current',
                level=30)
        return [self._to_info(r) for r in data_list]

    def _to_info(self, rec):
        img_path = inside(self.data_root, rec['img'])
        if img_path is None:
            raise RecordError(
                f'HatefulMemes: {rec["file"]}:{rec["line"]}: "img" '
                f'{show(rec["img"], 60)} points outside {self.data_root} '
                'or is no valid file name; expected a relative path like '
                '"img/01235.png"')
        info = dict(
            img_path=img_path,
            text=rec['text'],
            id=rec['id'],
            source=rec['source'])
        if 'gt_label' in rec:
            info['gt_label'] = rec['gt_label']
        return info
