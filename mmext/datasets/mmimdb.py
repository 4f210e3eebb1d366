# Copyright (c) mmext contributors. All rights reserved.
"""MM-IMDb (Arevalo et al., "Gated Multimodal Units for Information
Fusion", ICLR workshop 2017): movie genre classification from poster and
plot, 23 genres, multi-label."""
import json
import os.path as osp

from mmengine.logging import print_log

from mmext.registry import DATASETS
from .image_text import ImageTextDataset, RecordError

__all__ = ['MMIMDb', 'MMIMDB_GENRES']

#: the 23 genres with enough movies, alphabetical (label order)
MMIMDB_GENRES = ('Action', 'Adventure', 'Animation', 'Biography', 'Comedy',
                 'Crime', 'Documentary', 'Drama', 'Family', 'Fantasy',
                 'Film-Noir', 'History', 'Horror', 'Music', 'Musical',
                 'Mystery', 'Romance', 'Sci-Fi', 'Short', 'Sport', 'Thriller',
                 'War', 'Western')

#: genres of a few movies that the 23-genre task leaves out
DROPPED_GENRES = ('Adult', 'News', 'Reality-TV', 'Talk-Show')

_SPLIT_KEYS = {'train': 'train', 'dev': 'dev', 'val': 'dev', 'test': 'test'}


@DATASETS.register_module()
class MMIMDb(ImageTextDataset):
    """MM-IMDb in its official layout and split (15552 / 2608 / 7799).

    Each movie is ``dataset/<id>.json`` (IMDb metadata: ``plot`` is a list
    of plot summaries, ``genres`` a list of names) and its poster
    ``dataset/<id>.jpeg``; ``split.json`` lists the ids of ``train``,
    ``dev`` and ``test``. The text is the longest plot summary (as MMBT,
    Kiela et al. 2019) or the first (``plot='first'``). Genres outside the
    23 (:data:`DROPPED_GENRES`) are left out of the label set and counted;
    any other genre name is an error. A movie left with no genre keeps an
    all-negative target (it is reported, not dropped).

    The ViLBERT thesis code reads another variant instead (``images.h5`` of
    (N, 3, 256, 160) posters + ``mmimdb_{trainval,test}.csv``, split 80/20
    with seed 42, not the official split); it is not supported here
    (h5py is not a dependency of mmext).

    ``data_info`` keys: ``img_path``, ``text``, ``id`` (the IMDb id, str),
    ``gt_label`` (list of genre indices, possibly empty); mmengine adds
    ``sample_idx``. ``MultiLabelClassificationMetric`` and mmpretrain's
    ``PackInputs`` take ``gt_label`` as indices.

    Args:
        data_root (str): Folder with ``split.json`` and ``dataset/``.
        split (str): 'train', 'dev' (or 'val') or 'test'.
            Defaults to 'train'.
        plot (str): 'longest' or 'first' plot summary. Defaults to
            'longest'.
        **kwargs: See :class:`ImageTextDataset`. A missing ``<id>.json`` or
            ``<id>.jpeg`` counts as a missing sample.

    Example:
        >>> from mmext.testing import make_mmimdb
        >>> root = make_mmimdb('work_dirs/ex_mmimdb')
        >>> ds = MMIMDb(str(root), split='dev')
        >>> info = ds.get_data_info(0)
        >>> len(ds.CLASSES), type(info['gt_label'])
        (23, <class 'list'>)
    """

    METAINFO = {'classes': MMIMDB_GENRES}
    LAYOUT = ('data/mmimdb/ (mmimdb.tar.gz, unpacked)\n'
              '├── split.json          ({"train": [15552 ids], "dev": [2608], '
              '"test": [7799]}, ids like "0076759")\n'
              '└── dataset/0076759.json  ({"plot": ["...", ...], "genres": '
              '["Action", ...], ...})\n'
              '            0076759.jpeg  (the poster)')

    def __init__(self, data_root, split='train', plot='longest', **kwargs):
        if split not in _SPLIT_KEYS:
            raise ValueError(f'MMIMDb: split must be one of '
                             f'{sorted(_SPLIT_KEYS)}, got {split!r}')
        if plot not in ('longest', 'first'):
            raise ValueError("MMIMDb: plot must be 'longest' or 'first', "
                             f'got {plot!r}')
        self.split = split
        self.plot = plot
        self.dropped_genres = {}
        super().__init__(data_root, ann_file='split.json', **kwargs)

    def _split_ids(self):
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'MMIMDb: no split.json in {self.data_root}; expected '
                f'layout:\n{self.LAYOUT}')
        try:
            with open(self.ann_file, encoding='utf-8-sig') as f:
                splits = json.load(f)
        except json.JSONDecodeError as e:
            raise RecordError(f'MMIMDb: {self.ann_file}: not valid JSON '
                              f'({e.msg} at line {e.lineno})') from None
        key = _SPLIT_KEYS[self.split]
        if not isinstance(splits, dict) or key not in splits:
            found = sorted(splits) if isinstance(splits, dict) else None
            raise RecordError(
                f'MMIMDb: {self.ann_file} has no key {key!r} (found '
                f"{found}); expected 'train', 'dev', 'test'")
        ids = [str(i) for i in splits[key]]
        for i in ids:
            if not i or '/' in i or '\\' in i or i in ('.', '..'):
                raise RecordError(f'MMIMDb: {self.ann_file}: {key} id {i!r} '
                                  'is not a file name')
        return ids

    def _parse(self, path, movie_id):
        where = f'MMIMDb: {path} (id {movie_id})'
        try:
            with open(path, encoding='utf-8-sig') as f:
                meta = json.load(f)
        except json.JSONDecodeError as e:
            raise RecordError(f'{where}: not valid JSON ({e.msg} at line '
                              f'{e.lineno})') from None
        plots = meta.get('plot') if isinstance(meta, dict) else None
        if isinstance(plots, str):
            plots = [plots]
        if not plots or not all(isinstance(p, str) for p in plots) or \
                not any(p.strip() for p in plots):
            raise RecordError(f'{where}: no "plot" text (a list of '
                              'strings expected)')
        genres = meta.get('genres')
        if not isinstance(genres, list) or not genres:
            raise RecordError(f'{where}: no "genres" list')
        labels = []
        for g in genres:
            if g in DROPPED_GENRES:
                self.dropped_genres[g] = self.dropped_genres.get(g, 0) + 1
            elif g in MMIMDB_GENRES:
                labels.append(MMIMDB_GENRES.index(g))
            else:
                raise RecordError(
                    f'{where}: unknown genre {g!r}; expected one of the 23 '
                    f'MM-IMDb genres {MMIMDB_GENRES} or {DROPPED_GENRES}')
        text = plots[0] if self.plot == 'first' else max(plots, key=len)
        return text, sorted(set(labels))

    def load_records(self):
        folder = osp.join(self.data_root, 'dataset')
        data_list, no_json, unlabelled = [], [], 0
        for movie_id in self._split_ids():
            path = osp.join(folder, f'{movie_id}.json')
            img_path = osp.join(folder, f'{movie_id}.jpeg')
            if not osp.isfile(path):
                no_json.append((movie_id, path))
                continue
            text, labels = self._parse(path, movie_id)
            unlabelled += not labels
            data_list.append(
                dict(
                    img_path=img_path, text=text, id=movie_id,
                    gt_label=labels))
        if self.dropped_genres:
            print_log(
                f'MMIMDb: genres outside the 23 left out of the '
                f'{self.split} labels: {self.dropped_genres}; '
                f'{unlabelled} movies have no genre left (all-'
                'negative target)',
                logger='current')
        self.missing.extend(no_json)  # reported with the missing posters
        return data_list
