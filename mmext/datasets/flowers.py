# Copyright (c) mmext contributors. All rights reserved.
"""Oxford Flowers-17 and Flowers-102 with class names and checked layouts.

mmpretrain has no Flowers-17 loader, and its ``Flowers102`` has no class
names, fails on a missing ``.mat`` key with a bare ``KeyError`` and on a
missing image only when that image is first loaded; neither notices a
float, duplicated or out-of-range index, an image in both train and test or
a class with no image. Both classes here check the split files
(:mod:`mmext.datasets.validation`, shared with the ``verify`` tools) and
every image of the split when the data set is built.
"""
from typing import List

from mmpretrain.datasets import BaseDataset
from mmpretrain.datasets import Flowers102 as _MMPretrainFlowers102

from mmext.registry import DATASETS
from .validation import (check_image_files, flowers17_data_list,
                         flowers17_problems, flowers102_problems, raise_first,
                         read_mat)

__all__ = [
    'Flowers17', 'Flowers102', 'FLOWERS17_CLASSES', 'FLOWERS102_CLASSES',
    'check_image_files'
]

FLOWERS17_CLASSES = ('Daffodil', 'Snowdrop', 'Lily Valley', 'Bluebell',
                     'Crocus', 'Iris', 'Tigerlily', 'Tulip', 'Fritillary',
                     'Sunflower', 'Daisy', "Colts' Foot", 'Dandelion',
                     'Cowslip', 'Buttercup', 'Windflower', 'Pansy')

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
    'bee balm', 'ball moss', 'foxglove', 'bougainvillea', 'camellia', 'mallow',
    'mexican petunia', 'bromelia', 'blanket flower', 'trumpet creeper',
    'blackberry lily')

_SPLITS = ('train', 'val', 'trainval', 'test')


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
        >>> from mmext.datasets.synthetic import make_flowers17
        >>> root = make_flowers17('work_dirs/ex_f17', per_class=4, size=32)
        >>> ds = Flowers17(str(root), split='test', split_id=2)
        >>> len(ds), ds.get_data_info(0)['gt_label'], ds.CLASSES[0]
        (17, 0, 'Daffodil')
    """

    METAINFO = {'classes': FLOWERS17_CLASSES}
    SPLIT_KEYS = {
        'train': ('trn', ),
        'val': ('val', ),
        'trainval': ('trn', 'val'),
        'test': ('tst', )
    }
    LAYOUT = ('data/flowers17/ (tools/dataset_converters/flowers17.py '
              'download)\n'
              '├── jpg/image_0001.jpg ... image_1360.jpg  (17 classes x 80, '
              'in class order)\n'
              '└── datasplits.mat  (trn1..3, val1..3, tst1..3: 1-based '
              'image indices)')

    def __init__(self,
                 data_root,
                 split='trainval',
                 split_id=1,
                 images_per_class=None,
                 **kwargs):
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

    FIX = ('check the folder against data/README.md or run python '
           'tools/dataset_converters/flowers17.py verify')

    def read_split_file(self):
        """``datasplits.mat`` checked (:func:`validation.flowers17_problems`):
        returns ``(key -> 1-D ids, images per class, problems)``."""
        keys = tuple(f'{p}{i}' for p in ('trn', 'val', 'tst')
                     for i in (1, 2, 3))
        mat = read_mat('Flowers17', self.ann_file, keys, self.data_root,
                       self.LAYOUT, 'trn1..3, val1..3, tst1..3')
        return flowers17_problems(mat, self.data_root, FLOWERS17_CLASSES,
                                  self.images_per_class, self.FIX,
                                  self.img_prefix)

    def load_data_list(self) -> List[dict]:
        """Check ``datasplits.mat`` (all nine keys) and the split's image
        files, return ``[{img_path, gt_label}, ...]``."""
        splits, per_class, problems = self.read_split_file()
        raise_first(problems)
        keys = [f'{p}{self.split_id}' for p in self.SPLIT_KEYS[self.split]]
        data_list = flowers17_data_list(splits, keys, per_class,
                                        self.img_prefix)
        check_image_files('Flowers17', self.data_root, data_list, self.FIX)
        return data_list

    def extra_repr(self) -> List[str]:
        return [
            f'Root of dataset: \t{self.data_root}',
            f'Split:           \t{self.split} (split {self.split_id})'
        ]


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
        >>> from mmext.datasets.synthetic import make_flowers102
        >>> _ = make_flowers102('work_dirs/ex_f102', per_class=4, size=32)
        >>> ds = Flowers102('work_dirs/ex_f102', split='train')
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

    FIX = ('check the folder against data/README.md or run python '
           'tools/dataset_converters/flowers102.py verify')

    def __init__(self, data_root, split='trainval', **kwargs):
        _check_split(split)
        super().__init__(data_root=data_root, split=split, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Read ``imagelabels.mat`` and ``setid.mat`` with scipy (MAT v4 and
        v5, any numeric class: mat4py returns floats for double-stored ids,
        which mmpretrain's loader cannot index with), check both files whole
        and the split's image files."""
        labels, ids, problems = self.read_split_files()
        raise_first(problems)
        keys = {
            'train': ('trnid', ),
            'val': ('valid', ),
            'trainval': ('trnid', 'valid'),
            'test': ('tstid', )
        }
        data_list = [
            dict(
                img_path=self.backend.join_path(self.img_prefix,
                                                f'image_{i:05d}.jpg'),
                gt_label=int(labels[i - 1]) - 1) for key in keys[self.split]
            for i in ids[key].tolist()
        ]
        check_image_files('Flowers102', self.data_root, data_list, self.FIX)
        return data_list

    def read_split_files(self):
        """``imagelabels.mat`` and ``setid.mat`` checked
        (:func:`validation.flowers102_problems`): returns ``(labels, key ->
        ids, problems)``."""
        labels = read_mat('Flowers102', self.ann_file, ('labels', ),
                          self.data_root, self.LAYOUT)['labels']
        sets = read_mat('Flowers102', self.train_test_split_file,
                        ('trnid', 'valid', 'tstid'), self.data_root,
                        self.LAYOUT)
        return flowers102_problems(labels, sets, self.data_root,
                                   FLOWERS102_CLASSES, self.FIX)
