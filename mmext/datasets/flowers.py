# Copyright (c) mmext contributors. All rights reserved.
"""Oxford Flowers-17 and Flowers-102 with class names and checked layouts.

mmpretrain has no Flowers-17 loader, and its ``Flowers102`` has no class
names, fails on a missing ``.mat`` key with a bare ``KeyError`` and on a
missing image only when that image is first loaded. Both classes here check
the split file and every image of the split when the data set is built.
"""
import os.path as osp
from typing import List

import numpy as np
import scipy.io
from mmpretrain.datasets import BaseDataset
from mmpretrain.datasets import Flowers102 as _MMPretrainFlowers102

from mmext.registry import DATASETS

__all__ = ['Flowers17', 'Flowers102', 'FLOWERS17_CLASSES',
           'FLOWERS102_CLASSES', 'check_image_files']

FLOWERS17_CLASSES = (
    'Daffodil', 'Snowdrop', 'Lily Valley', 'Bluebell', 'Crocus', 'Iris',
    'Tigerlily', 'Tulip', 'Fritillary', 'Sunflower', 'Daisy', "Colts' Foot",
    'Dandelion', 'Cowslip', 'Buttercup', 'Windflower', 'Pansy')

# The official Oxford category list in label order (label k is class k + 1
# of imagelabels.mat), spelled as published, "pink-yellow dahlia?" included.
FLOWERS102_CLASSES = (
    'pink primrose', 'hard-leaved pocket orchid', 'canterbury bells',
    'sweet pea', 'english marigold', 'tiger lily', 'moon orchid',
    'bird of paradise', 'monkshood', 'globe thistle', 'snapdragon',
    "colt's foot", 'king protea', 'spear thistle', 'yellow iris',
    'globe-flower', 'purple coneflower', 'peruvian lily', 'balloon flower',
    'giant white arum lily', 'fire lily', 'pincushion flower', 'fritillary',
    'red ginger', 'grape hyacinth', 'corn poppy', 'prince of wales feathers',
    'stemless gentian', 'artichoke', 'sweet william', 'carnation',
    'garden phlox', 'love in the mist', 'mexican aster', 'alpine sea holly',
    'ruby-lipped cattleya', 'cape flower', 'great masterwort', 'siam tulip',
    'lenten rose', 'barbeton daisy', 'daffodil', 'sword lily', 'poinsettia',
    'bolero deep blue', 'wallflower', 'marigold', 'buttercup', 'oxeye daisy',
    'common dandelion', 'petunia', 'wild pansy', 'primula', 'sunflower',
    'pelargonium', 'bishop of llandaff', 'gaura', 'geranium', 'orange dahlia',
    'pink-yellow dahlia?', 'cautleya spicata', 'japanese anemone',
    'black-eyed susan', 'silverbush', 'californian poppy', 'osteospermum',
    'spring crocus', 'bearded iris', 'windflower', 'tree poppy', 'gazania',
    'azalea', 'water lily', 'rose', 'thorn apple', 'morning glory',
    'passion flower', 'lotus', 'toad lily', 'anthurium', 'frangipani',
    'clematis', 'hibiscus', 'columbine', 'desert-rose', 'tree mallow',
    'magnolia', 'cyclamen', 'watercress', 'canna lily', 'hippeastrum',
    'bee balm', 'ball moss', 'foxglove', 'bougainvillea', 'camellia',
    'mallow', 'mexican petunia', 'bromelia', 'blanket flower',
    'trumpet creeper', 'blackberry lily')

_SPLITS = ('train', 'val', 'trainval', 'test')


def check_image_files(name, data_root, data_list, fix, show=5):
    """Raise FileNotFoundError when images of ``data_list`` are missing,
    with the count and the first ``show`` of them (relative to
    ``data_root``)."""
    missing = [d['img_path'] for d in data_list
               if not osp.isfile(d['img_path'])]
    if missing:
        first = ', '.join(osp.relpath(p, data_root) for p in missing[:show])
        more = f' and {len(missing) - show} more' if len(missing) > show \
            else ''
        raise FileNotFoundError(
            f'{name}: {len(missing)} of {len(data_list)} images listed by '
            f'the split file are missing in {data_root}: {first}{more}; '
            f'{fix}')


def _check_split(split):
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got '{split}'")


@DATASETS.register_module()
class Flowers17(BaseDataset):
    """The Oxford 17 Category Flower Dataset.

    Nilsback & Zisserman, "A Visual Vocabulary for Flower Classification",
    CVPR 2006: 17 classes x 80 images, with three official random splits of
    40 train / 20 val / 20 test images per class. Images are stored in class
    order, so the label of ``image_%04d.jpg`` with index ``i`` is
    ``(i - 1) // 80``; ``datasplits.mat`` (MAT v4 or v5, compressed or not)
    holds the 1-based indices of each split. mmpretrain has no loader for
    it.

    Args:
        data_root (str): Folder with ``jpg/`` and ``datasplits.mat``
            (see :attr:`LAYOUT`).
        split (str): 'train', 'val', 'trainval' (train then val) or
            'test'. Defaults to 'trainval'.
        split_id (int): Which of the three official splits, 1..3.
            Defaults to 1.
        images_per_class (int, optional): Images per class (80 in the real
            set). None infers it from the largest index in
            ``datasplits.mat``, so a smaller generated set in the same
            layout loads too. Defaults to None.
        **kwargs: Passed to :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``lazy_init``, ``indices``, ...).

    Example:
        >>> from mmext.testing import make_flowers17
        >>> root = make_flowers17('/tmp/f17', per_class=4, size=32)
        >>> ds = Flowers17(str(root), split='test', split_id=2)
        >>> len(ds), ds.get_data_info(0)['gt_label'], ds.CLASSES[0]
        (17, 0, 'Daffodil')
    """

    METAINFO = {'classes': FLOWERS17_CLASSES}
    SPLIT_KEYS = {'train': ('trn', ), 'val': ('val', ),
                  'trainval': ('trn', 'val'), 'test': ('tst', )}
    LAYOUT = ('data/flowers17/ (tools/dataset_converters/flowers17.py '
              'download)\n'
              '├── jpg/image_0001.jpg ... image_1360.jpg  (17 classes x 80, '
              'in class order)\n'
              '└── datasplits.mat  (trn1..3, val1..3, tst1..3: 1-based '
              'image indices)')

    def __init__(self, data_root, split='trainval', split_id=1,
                 images_per_class=None, **kwargs):
        _check_split(split)
        if split_id not in (1, 2, 3):
            raise ValueError(f'split_id must be 1, 2 or 3, got {split_id!r}')
        self.split = split
        self.split_id = split_id
        self.images_per_class = images_per_class
        super().__init__(
            ann_file='datasplits.mat',
            data_root=data_root,
            data_prefix='jpg',
            test_mode=split == 'test',
            **kwargs)

    def _read_splits(self):
        keys = tuple(f'{p}{i}' for p in ('trn', 'val', 'tst')
                     for i in (1, 2, 3))
        return _load_mat_rows('Flowers17', self.ann_file, keys,
                              self.data_root, self.LAYOUT,
                              'trn1..3, val1..3, tst1..3')

    def _per_class(self, splits):
        largest = max(int(v.max()) for v in splits.values() if v.size)
        if self.images_per_class is not None:
            return self.images_per_class
        if largest % len(FLOWERS17_CLASSES):
            raise ValueError(
                f'Flowers17: the largest index in datasplits.mat is '
                f'{largest}, not a multiple of 17 classes, so the class of '
                f'an image cannot be inferred in {self.data_root}; pass '
                f'images_per_class (80 for the real set)')
        return largest // len(FLOWERS17_CLASSES)

    def load_data_list(self) -> List[dict]:
        """Read the split, check indices and image files, return
        ``[{img_path, gt_label}, ...]``."""
        splits = self._read_splits()
        per_class = self._per_class(splits)
        num_images = per_class * len(FLOWERS17_CLASSES)
        data_list = []
        for prefix in self.SPLIT_KEYS[self.split]:
            key = f'{prefix}{self.split_id}'
            ids = splits[key]
            bad = ids[(ids < 1) | (ids > num_images)]
            if bad.size:
                raise ValueError(
                    f"Flowers17: datasplits.mat key '{key}' has indices out "
                    f'of range 1..{num_images} ({per_class} per class): '
                    f'{bad[:5].tolist()} in {self.data_root}')
            for i in ids.tolist():
                data_list.append(
                    dict(
                        img_path=osp.join(self.img_prefix,
                                          f'image_{i:04d}.jpg'),
                        gt_label=(i - 1) // per_class))
        check_image_files(
            'Flowers17', self.data_root, data_list,
            'check the folder against data/README.md or run '
            'python tools/dataset_converters/flowers17.py verify')
        return data_list

    def extra_repr(self) -> List[str]:
        return [f'Root of dataset: \t{self.data_root}',
                f'Split:           \t{self.split} (split {self.split_id})']


@DATASETS.register_module()
class Flowers102(_MMPretrainFlowers102):
    """The Oxford 102 Category Flower Dataset, with its class names.

    Nilsback & Zisserman, "Automated Flower Classification over a Large
    Number of Classes", ICVGIP 2008: 8189 images of 102 classes; ``setid.mat``
    gives 10 train and 10 val images per class, the rest (6149) is test.
    Reuses mmpretrain's loader (``imagelabels.mat``, ``setid.mat``,
    ``jpg/image_%05d.jpg``) and adds what it lacked: the official class
    names in label order, :attr:`LAYOUT`, and errors naming a missing
    ``.mat`` file or key and missing images when the data set is built.

    Args:
        data_root (str): Folder with ``jpg/``, ``imagelabels.mat`` and
            ``setid.mat`` (see :attr:`LAYOUT`).
        split (str): 'train', 'val', 'trainval' or 'test'.
            Defaults to 'trainval'.
        **kwargs: Passed to :class:`mmpretrain.datasets.BaseDataset`.

    Example:
        >>> from mmext.testing import make_flowers102
        >>> _ = make_flowers102('/tmp/f102', per_class=4, size=32)
        >>> ds = Flowers102('/tmp/f102', split='train')
        >>> len(ds), len(ds.CLASSES), ds.CLASSES[0]
        (102, 102, 'pink primrose')
    """

    METAINFO = {'classes': FLOWERS102_CLASSES}
    LAYOUT = ('data/flowers102/ (tools/dataset_converters/flowers102.py '
              'download)\n'
              '├── jpg/image_00001.jpg ... image_08189.jpg\n'
              '├── imagelabels.mat  (labels: 1 x 8189, classes 1..102)\n'
              '├── setid.mat  (trnid, valid, tstid: 1-based image ids)\n'
              '└── exclude_flowers17.txt  (optional, for the no-leak '
              'configs: tools/dedup/find_leakage.py writes it)')

    def __init__(self, data_root, split='trainval', **kwargs):
        _check_split(split)
        super().__init__(data_root=data_root, split=split, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Read ``imagelabels.mat`` and ``setid.mat`` with scipy (MAT v4 and
        v5, any numeric class: mat4py returns floats for double-stored ids,
        which mmpretrain's loader cannot index with), check ids, labels and
        image files."""
        fix = ('check the folder against data/README.md or run '
               'python tools/dataset_converters/flowers102.py verify')
        labels = _load_mat_rows('Flowers102', self.ann_file, ('labels', ),
                                self.data_root, self.LAYOUT)['labels']
        sets = _load_mat_rows('Flowers102', self.train_test_split_file,
                              ('trnid', 'valid', 'tstid'), self.data_root,
                              self.LAYOUT)
        keys = {'train': ('trnid', ), 'val': ('valid', ),
                'trainval': ('trnid', 'valid'), 'test': ('tstid', )}
        ids = np.concatenate([sets[k] for k in keys[self.split]])
        bad = ids[(ids < 1) | (ids > labels.size)]
        if bad.size:
            raise ValueError(
                f'Flowers102: setid.mat has image ids out of range '
                f'1..{labels.size} (the length of imagelabels.mat labels): '
                f'{bad[:5].tolist()} in {self.data_root}; {fix}')
        bad = labels[(labels < 1) | (labels > len(FLOWERS102_CLASSES))]
        if bad.size:
            raise ValueError(
                f'Flowers102: imagelabels.mat has labels outside 1..102: '
                f'{bad[:5].tolist()} in {self.data_root}; {fix}')
        data_list = [
            dict(img_path=self.backend.join_path(self.img_prefix,
                                                 f'image_{i:05d}.jpg'),
                 gt_label=int(labels[i - 1]) - 1) for i in ids.tolist()
        ]
        check_image_files('Flowers102', self.data_root, data_list, fix)
        return data_list


def _load_mat_rows(name, path, keys, data_root, layout, expected=None):
    """Read integer rows ``keys`` of a MAT v4/v5 file as 1-D int64 arrays,
    with an error naming the file, the key or the bad values."""
    fname = osp.basename(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{name}: no {fname} in {data_root}; '
                                f'expected layout:\n{layout}')
    try:
        mat = scipy.io.loadmat(path)
    except (ValueError, NotImplementedError, TypeError, OSError) as e:
        raise ValueError(
            f'{name}: cannot read {path} ({e}); it must be a MAT v4/v5 file '
            f"(re-save MAT v7.3/HDF5 files with MATLAB's save -v7)") from e
    rows = {}
    for key in keys:
        if key not in mat:
            raise KeyError(f"{name}: {fname} has no key '{key}' (expected "
                           f"{expected or ', '.join(keys)}) in {data_root}")
        values = np.asarray(mat[key], dtype=np.float64).ravel()
        ids = values.astype(np.int64)
        if not np.array_equal(ids, values):
            raise ValueError(f"{name}: {fname} key '{key}' holds non-integer "
                             f'values in {data_root}')
        rows[key] = ids
    return rows
