# Copyright (c) mmext contributors. All rights reserved.
"""Drop listed images from any data set, and guard against train/test leaks.

mmengine's ``BaseDataset`` can keep a subset by ``indices`` but has no way to
drop images by name, and nothing checks that a training set shares no image
with a held-out set. :class:`ExcludeImages` does both for any data set that
has a ``data_root`` and ``img_path`` entries.
"""
import copy
import os.path as osp
import warnings

import numpy as np
from mmengine.dataset.base_dataset import force_full_init
from mmengine.logging import MMLogger

from mmext.dedup.textio import escape_path, read_exclude_file
from mmext.registry import DATASETS

__all__ = ['ExcludeImages', 'LeakageError']

_ON_LEAK = ('error', 'filter', 'warn')


class LeakageError(RuntimeError):
    """The training set holds near-duplicates of held-out images."""


def _normalise(rel_path):
    # a backslash here is part of a name: the parser has already turned
    # hand-written Windows separators into '/'
    while rel_path.startswith('./'):
        rel_path = rel_path[2:]
    return osp.normpath(rel_path)


def _show(items, n=5):
    more = f' and {len(items) - n} more' if len(items) > n else ''
    return ', '.join(str(i) for i in items[:n]) + more


@DATASETS.register_module()
class ExcludeImages:
    """A data set without the images an exclude file or a held-out set
    names.

    Any data set works (its ``data_info`` needs ``img_path``, the data set a
    ``data_root``); ``metainfo`` and class names are the wrapped set's.

    *Exclude file.* One path per line relative to ``data_root`` with '/'
    separators (``jpg/image_00042.jpg``), ``#`` comments, blank lines
    ignored, names escaped as :mod:`mmext.dedup.textio` documents (so any
    POSIX name round-trips); ``tools/dedup/find_leakage.py`` writes it. A
    listed path that is another split's image is fine; one that is no file
    under ``data_root`` raises (``strict=True``) or warns.

    *Leakage guard.* With ``heldout`` (a data set config, e.g. the test set
    of Flowers-17) every remaining image is perceptual-hashed
    (:func:`mmext.dedup.hash_images`, flip-aware) and compared with the
    held-out images (:func:`mmext.dedup.find_cross_set_duplicates`).
    Duplicates (the near-duplicate leaks of Barz & Denzler, "Do We Train on
    Test Data? Purging CIFAR of Near-Duplicates", J. Imaging 2020) raise
    :class:`LeakageError` (``on_leak='error'``), are dropped
    (``'filter'``) or only logged (``'warn'``).

    Args:
        dataset (dict | BaseDataset): The data set to filter.
        exclude_file (str, optional): Exclude file. Defaults to None.
        strict (bool): Raise (True) or warn (False) for exclude entries
            that are no file under ``data_root``. Defaults to True.
        heldout (dict | BaseDataset | list, optional): Held-out data set(s)
            to check against; a list checks against their union (e.g. the
            test splits 1..3 of Flowers-17). Defaults to None.
        on_leak (str): 'error', 'filter' or 'warn'. Defaults to 'error'.
        hash_cfg (dict, optional): Arguments of ``hash_images`` (``method``,
            ``hash_size``, ``workers``, ``cache_file``, ``decode='fast'``
            for JPEGs decoded downscaled...). Defaults to phash, 8,
            flip-aware, exact decode, no progress bar.
        threshold (int, optional): Largest Hamming distance of a duplicate.
            Defaults to :func:`mmext.dedup.default_threshold` of the method.
        geometric (bool | dict, optional): Also run the geometric stage
            (:func:`mmext.dedup.geometric.find_geometric_pairs`: crops,
            rotations, borders; a dict holds its arguments); features are
            cached in ``hash_cfg['cache_file']``. Defaults to None (hashes
            only).
        lazy_init (bool): Defer loading and filtering until first use (as
            mmengine's wrappers). Defaults to False.

    Example:
        >>> from mmext.datasets.synthetic import (make_flowers17,
        ...                                       make_flowers102)
        >>> f17 = make_flowers17('work_dirs/ex_f17', per_class=4, size=32)
        >>> planted = make_flowers102(  # a Flowers-17 test image, re-encoded
        ...     'work_dirs/ex_f102', per_class=4, size=32,
        ...     duplicates_of=[f17 / 'jpg/image_0002.jpg'])
        >>> ds = ExcludeImages(
        ...     dict(type='Flowers102', data_root='work_dirs/ex_f102',
        ...          split='train'),
        ...     heldout=dict(type='Flowers17', data_root='work_dirs/ex_f17',
        ...                  split='test'),
        ...     on_leak='filter')
        >>> len(ds), ds.excluded[0][1], ds.leaks[0].distance
        (101, 'leak', 2)
    """

    def __init__(self,
                 dataset,
                 exclude_file=None,
                 strict=True,
                 heldout=None,
                 on_leak='error',
                 hash_cfg=None,
                 threshold=None,
                 geometric=None,
                 lazy_init=False):
        if on_leak not in _ON_LEAK:
            raise ValueError(f'ExcludeImages: on_leak must be one of '
                             f'{_ON_LEAK}, got {on_leak!r}')
        self.dataset = DATASETS.build(dataset) if isinstance(dataset,
                                                             dict) else dataset
        self.exclude_file = exclude_file
        self.strict = strict
        self.heldout = heldout
        self.on_leak = on_leak
        self.hash_cfg = dict(progress=False)
        self.hash_cfg.update(hash_cfg or {})
        self.threshold = threshold
        self.geometric = geometric
        self._metainfo = self.dataset.metainfo
        self.excluded = []  # (img_path, reason) of every dropped image
        self.leaks = []  # DuplicatePair of every leak found
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self):
        """The wrapped data set's meta information (class names...)."""
        return copy.deepcopy(self._metainfo)

    @property
    def CLASSES(self):
        return self._metainfo.get('classes')

    def full_init(self):
        """Load the wrapped data set and drop the excluded images."""
        if self._fully_initialized:
            return
        self.dataset.full_init()
        paths = [
            self.dataset.get_data_info(i)['img_path']
            for i in range(len(self.dataset))
        ]
        keep = [True] * len(paths)
        if self.exclude_file:
            self._apply_exclude_file(paths, keep)
        if self.heldout is not None:
            self._apply_leakage_guard(paths, keep)
        self._indices = [i for i, k in enumerate(keep) if k]
        self._fully_initialized = True

    def _data_root(self):
        root = getattr(self.dataset, 'data_root', None)
        if not root:
            raise ValueError(
                f'ExcludeImages: {type(self.dataset).__name__} has no '
                f'data_root, so exclude-file paths cannot be resolved; wrap '
                f'the data set itself, not a wrapper around it')
        return root

    def _apply_exclude_file(self, paths, keep):
        root = self._data_root()
        try:  # the one parser of the format, mmext.dedup.textio
            entries = [
                _normalise(entry)
                for entry in read_exclude_file(self.exclude_file)
            ]
        except FileNotFoundError as e:
            raise FileNotFoundError(f'ExcludeImages: {e}') from None
        except ValueError as e:
            raise ValueError(f'ExcludeImages: {e}') from None
        index = {
            _normalise(osp.relpath(p, root)): i
            for i, p in enumerate(paths)
        }
        dropped, elsewhere, unknown = 0, 0, []
        for entry in dict.fromkeys(entries):  # unique, file order
            i = index.get(entry)
            if i is not None:
                if keep[i]:
                    keep[i] = False
                    dropped += 1
                    self.excluded.append((paths[i], 'exclude file'))
            elif osp.isfile(osp.join(root, entry)):
                elsewhere += 1  # another split's image
            else:
                unknown.append(entry)
        if unknown:
            shown = _show([escape_path(u) for u in unknown])
            msg = (f'ExcludeImages: {len(unknown)} entries of '
                   f'{self.exclude_file} are no file under {root}: '
                   f'{shown}; paths must be relative to data_root '
                   f"with '/' separators (e.g. jpg/image_00042.jpg)")
            if self.strict:
                raise ValueError(msg + ', or pass strict=False to ignore')
            warnings.warn(msg)
            MMLogger.get_current_instance().warning(msg)
        MMLogger.get_current_instance().info(
            f'ExcludeImages: dropped {dropped} of {len(paths)} images of '
            f'{type(self.dataset).__name__} listed in {self.exclude_file} '
            f'({elsewhere} more listed are not in this split)')

    def _apply_leakage_guard(self, paths, keep):
        from mmext.dedup import (default_threshold, find_cross_set_duplicates,
                                 hash_images)
        specs = self.heldout if isinstance(self.heldout,
                                           (list, tuple)) else [self.heldout]
        ref_paths, names = [], []
        for spec in specs:
            heldout = DATASETS.build(spec) if isinstance(spec, dict) else spec
            heldout.full_init()
            ref_paths += [
                heldout.get_data_info(i)['img_path']
                for i in range(len(heldout))
            ]
            names.append(type(heldout).__name__)
        ref_paths = list(dict.fromkeys(ref_paths))
        query_paths = [p for p, k in zip(paths, keep) if k]
        query = hash_images(query_paths, **self.hash_cfg)
        reference = hash_images(ref_paths, **self.hash_cfg)
        threshold = self.threshold
        if threshold is None:
            threshold = default_threshold(query.method, query.hash_size)
        self.leaks = find_cross_set_duplicates(
            query, reference, threshold=threshold)
        if self.geometric:
            from mmext.dedup.geometric import find_leaks_geometric
            self.leaks += find_leaks_geometric(
                query.paths, reference.paths, self.leaks, self.hash_cfg,
                self.geometric if isinstance(self.geometric, dict) else {})
        logger = MMLogger.get_current_instance()
        for path, reason in query.skipped + reference.skipped:
            logger.warning(f'ExcludeImages: not hashed, so not checked for '
                           f'leaks: {path} ({reason})')
        name = type(self.dataset).__name__
        held = '+'.join(dict.fromkeys(names))
        if not self.leaks:
            logger.info(f'ExcludeImages: no near-duplicates of the '
                        f'{len(ref_paths)} held-out {held} images among '
                        f'{len(query_paths)} {name} images (threshold '
                        f'{threshold})')
            return
        leaked = list(dict.fromkeys(p.query_path for p in self.leaks))
        shown = [
            f'{osp.basename(p.query_path)}~{osp.basename(p.ref_path)} ' +
            (f'({p.distance} bits, {p.variant})' if p.distance is not None else
             f'(geometric, {p.inliers} inliers)') for p in self.leaks
        ]
        msg = (f'ExcludeImages: {len(leaked)} of {len(query_paths)} {name} '
               f'images are near-duplicates of held-out {held} images: '
               f'{_show(shown)}')
        if self.on_leak == 'error':
            raise LeakageError(
                msg + "; drop them with on_leak='filter', or write an "
                'exclude file with tools/dedup/find_leakage.py')
        if self.on_leak == 'warn':
            logger.warning(msg)
            return
        position = {p: i for i, p in enumerate(paths)}
        for p in leaked:
            keep[position[p]] = False
            self.excluded.append((p, 'leak'))
        logger.info(msg + f'; dropped {len(leaked)}')

    @force_full_init
    def get_data_info(self, idx):
        """Data info of the ``idx``-th kept image."""
        return self.dataset.get_data_info(self._indices[idx])

    @force_full_init
    def get_cat_ids(self, idx):
        return self.dataset.get_cat_ids(self._indices[idx])

    @force_full_init
    def get_gt_labels(self):
        return np.array(
            [self.get_data_info(i)['gt_label'] for i in range(len(self))])

    def __getitem__(self, idx):
        if not self._fully_initialized:
            MMLogger.get_current_instance().warning(
                'Please call `full_init` method manually to accelerate the '
                'speed.')
            self.full_init()
        prepare = getattr(self.dataset, 'prepare_data', None)
        if prepare is None or getattr(self.dataset, 'test_mode', True):
            return self.dataset[self._indices[idx]]
        # mmengine re-draws an image whose pipeline returns None from the
        # whole data set, excluded images included: re-draw among kept ones
        rng = np.random.default_rng(idx)
        for _ in range(getattr(self.dataset, 'max_refetch', 1000) + 1):
            data = prepare(self._indices[idx])
            if data is not None:
                return data
            idx = int(rng.integers(len(self._indices)))
        raise RuntimeError(f'ExcludeImages: the pipeline returned None for '
                           f'{getattr(self.dataset, "max_refetch", 1000) + 1}'
                           f' kept images in a row; check the pipeline')

    @force_full_init
    def __len__(self):
        return len(self._indices)

    def __repr__(self):
        state = (f'{len(self)} images, {len(self.excluded)} excluded'
                 if self._fully_initialized else 'not initialised')
        return (f'ExcludeImages({state})\n  exclude_file: {self.exclude_file}'
                f'\n  heldout: {self.heldout}\n  dataset: {self.dataset!r}')
