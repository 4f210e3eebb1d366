# Copyright (c) mmext contributors. All rights reserved.
"""Base of the image-text data sets (Conceptual Captions, Hateful Memes,
MM-IMDb, UPMC Food-101): one sample = one image file + one text.

Every sample's ``data_info`` has ``img_path`` (absolute or relative to the
working directory), ``text`` (str), ``id`` (the record's own id, stable
across runs and filters) and, for the classification sets, ``gt_label``;
mmengine adds ``sample_idx`` (the position in this data set). Samples whose
image is missing are counted, reported in one warning with examples, and
skipped (``on_missing='skip'``) or refused (``on_missing='error'``); they
are never dropped without a word. A malformed record raises
:class:`RecordError` naming the file and the line or id.
"""
import os
import os.path as osp

from mmengine.logging import print_log
from mmpretrain.datasets import BaseDataset

__all__ = ['ImageTextDataset', 'RecordError', 'inside']


class RecordError(ValueError):
    """An annotation record is malformed (the message names file and
    line / id, the cause and the fix)."""


def inside(root, relative):
    """``root/relative`` if it stays inside ``root``, else None (absolute
    paths, ``..`` components and drive letters are refused)."""
    if not relative or osp.isabs(relative) or '\\' in relative or \
            '\0' in relative:
        return None
    joined = osp.normpath(osp.join(root, relative))
    base = osp.normpath(root)
    if joined != base and joined.startswith(base + os.sep):
        return joined
    return None


class ImageTextDataset(BaseDataset):
    """Shared bookkeeping of the image-text data sets.

    Subclasses implement :meth:`load_records` returning data infos with an
    ``img_path``; this class checks the images and reports the missing ones.

    Args:
        data_root (str): Data set folder (see the subclass's ``LAYOUT``).
        on_missing (str): 'skip' (warn with the count, keep the rest) or
            'error' when image files are missing. Defaults to 'skip'.
        check_images (bool): Look for every image when the data set is
            built. Defaults to True.
        **kwargs: Passed to :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``lazy_init``, ``indices``, ...).
    """

    LAYOUT = ''

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

    def load_data_list(self):
        self.missing = []  # subclasses may add (id, path) of lost files
        records = self.load_records()
        total = len(records) + len(self.missing)
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
            self._report_missing(total)
        return records

    @staticmethod
    def _existing_files(records):
        """{folder: names of its files}: one listdir per folder instead of
        one stat per sample (3.3M for Conceptual Captions)."""
        existing = {}
        for folder in {osp.dirname(rec['img_path']) for rec in records}:
            try:
                with os.scandir(folder) as it:
                    existing[folder] = {e.name for e in it if e.is_file()}
            except (FileNotFoundError, NotADirectoryError):
                existing[folder] = set()
        return existing

    def _report_missing(self, total):
        name, root = type(self).__name__, self.data_root
        show = ', '.join(
            f'{i} ({p if p.startswith("<") else osp.relpath(p, root)})'
            for i, p in self.missing[:3])
        msg = (f'{name}: {len(self.missing)} of {total} samples miss '
               f'their file in {self.data_root}, e.g. {show}')
        if self.on_missing == 'error':
            raise FileNotFoundError(
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
