# Copyright (c) mmext contributors. All rights reserved.
"""MM-IMDb (Arevalo et al., "Gated Multimodal Units for Information
Fusion", ICLR workshop 2017): movie genre classification from poster and
plot, 23 genres, multi-label."""
import os.path as osp
from collections import Counter

from mmengine.logging import print_log

from mmext.registry import DATASETS
from .image_text import (ImageTextDataset, RecordError, describe, first_few,
                         json_type, parse_json, plain_file_name,
                         read_annotation, show)

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

    ``split.json`` is checked whole when the data set is built (upstream
    readers take it as given): each of ``train``, ``dev``, ``test`` must be
    a list of ids (strings or integers) that are plain file names, no id
    may repeat within a split or appear in two splits, and the requested
    split must not be empty. A movie file that is no JSON object, or whose
    ``plot`` / ``genres`` have the wrong type, is a :class:`RecordError`
    naming the file and the field.

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
        """The ids of ``self.split`` after checking every split of
        ``split.json``: a list of ids (strings or integers) that are plain
        file names, none twice, no id in two splits."""
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'MMIMDb: no split.json in {self.data_root}; expected '
                f'layout:\n{self.LAYOUT}')
        where = f'MMIMDb: {self.ann_file}'
        splits = parse_json(
            where, read_annotation('MMIMDb', self.ann_file),
            'expected {"train": [ids], "dev": [...], "test": [...]}')
        key = _SPLIT_KEYS[self.split]
        if not isinstance(splits, dict) or key not in splits:
            found = first_few(sorted(splits)) if isinstance(splits, dict) \
                else json_type(splits)
            raise RecordError(
                f'{where} has no key {key!r} (found {found}); expected '
                "'train', 'dev', 'test'")
        ids = {
            k: self._check_ids(where, k, splits[k])
            for k in ('train', 'dev', 'test') if k in splits
        }
        names = list(ids)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                other = set(ids[b])
                shared = [m for m in ids[a] if m in other]
                if shared:
                    raise RecordError(
                        f'{where}: {len(shared)} ids are in both {a!r} and '
                        f'{b!r}, first {first_few(shared)}: a movie in two '
                        'splits evaluates on training data; keep each id in '
                        'one split')
        if not ids[key]:
            raise RecordError(f'{where} lists no ids in {key!r}; expected '
                              f'the {key} ids of the official split')
        return ids[key]

    @staticmethod
    def _check_ids(where, key, values):
        if not isinstance(values, list):
            raise RecordError(
                f'{where}: {key!r} is {describe(values)}, expected a list '
                'of ids like ["0076759", ...]')
        ids = []
        for n, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise RecordError(
                    f'{where}: {key!r} item {n} is {describe(value)}, '
                    'expected an id string like "0076759"')
            ids.append(str(value))
            if not plain_file_name(ids[-1]):
                raise RecordError(f'{where}: {key} id {show(ids[-1], 40)} '
                                  'is not a file name')
        counts = Counter(ids)
        repeated = [i for i in counts if counts[i] > 1]
        if repeated:
            raise RecordError(
                f'{where} lists {len(repeated)} ids more than once in '
                f'{key!r}, first {first_few(repeated)}: remove the repeats')
        return ids

    def _parse(self, path, movie_id):
        where = f'MMIMDb: {path} (id {movie_id})'
        meta = parse_json(
            f'MMIMDb: {path}', read_annotation('MMIMDb', path),
            'expected IMDb metadata {"plot": [...], "genres": [...]}')
        if not isinstance(meta, dict):
            raise RecordError(f'{where}: {json_type(meta)}, expected an '
                              'object with "plot" and "genres"')
        plots = meta.get('plot')
        if isinstance(plots, str):
            plots = [plots]
        if plots is not None and (not isinstance(plots, list) or
                                  not all(isinstance(p, str) for p in plots)):
            bad = next((p for p in plots if not isinstance(p, str)),
                       plots) if isinstance(plots, list) else plots
            raise RecordError(f'{where}: "plot" holds {describe(bad)}; '
                              'expected a list of strings')
        if not plots or not any(p.strip() for p in plots):
            raise RecordError(f'{where}: no "plot" text (a list of '
                              'strings expected)')
        genres = meta.get('genres')
        if not isinstance(genres, list) or not genres:
            raise RecordError(
                f'{where}: no "genres" list (found {describe(genres)}); '
                'expected a list of genre names')
        labels = []
        for g in genres:
            if not isinstance(g, str):
                raise RecordError(f'{where}: "genres" holds {describe(g)}; '
                                  'expected genre names like "Drama"')
            if g in DROPPED_GENRES:
                self.dropped_genres[g] = self.dropped_genres.get(g, 0) + 1
            elif g in MMIMDB_GENRES:
                labels.append(MMIMDB_GENRES.index(g))
            else:
                raise RecordError(
                    f'{where}: unknown genre {show(g, 40)}; expected one of '
                    f'the 23 MM-IMDb genres {MMIMDB_GENRES} or '
                    f'{DROPPED_GENRES}')
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
