# Copyright (c) mmext contributors. All rights reserved.
"""A reproducible train / validation split of any data set."""
import numpy as np

from mmext.registry import DATASETS

__all__ = ['SeededSplit']


@DATASETS.register_module()
class SeededSplit:
    """One part of a seeded random split of a data set.

    For data sets whose official split has no validation part (UPMC
    Food-101): ``part='train'`` and ``part='val'`` with the same ``ratio``
    and ``seed`` are disjoint and together cover the data set, so early
    stopping never looks at the test split. mmengine's ``indices`` argument
    only takes the first N samples (class-ordered files would give a
    validation set of a few classes). An empty part is refused when the
    split is built.

    Args:
        dataset (dict | BaseDataset): The data set to split.
        ratio (float): Share of samples in the train part. Defaults to 0.8
            (the ViLBERT thesis code's 80/20).
        part (str): 'train' or 'val'.
        seed (int): Permutation seed. Defaults to 46 (the thesis code's
            Food-101 seed).

    Example:
        >>> food = dict(type='UPMCFood101', data_root='data/upmc',
        ...             split='train')
        >>> val = SeededSplit(food, part='val')  # doctest: +SKIP
    """

    def __init__(self, dataset, ratio=0.8, part='train', seed=46):
        if part not in ('train', 'val'):
            raise ValueError(f"SeededSplit: part must be 'train' or 'val', "
                             f'got {part!r}')
        if not 0 < ratio < 1:
            raise ValueError(f'SeededSplit: ratio {ratio} is not in (0, 1)')
        self.dataset = (
            DATASETS.build(dataset) if isinstance(dataset, dict) else dataset)
        self.ratio, self.part, self.seed = ratio, part, seed
        n = len(self.dataset)
        order = np.random.default_rng(seed).permutation(n)
        cut = int(round(ratio * n))
        self.indices = np.sort(order[:cut] if part ==
                               'train' else order[cut:]).tolist()
        if not self.indices:  # mmengine fails later without naming it
            name = type(self.dataset).__name__
            raise ValueError(
                f'SeededSplit: the {part} part of {name} is empty ({n} '
                f'samples, ratio {ratio}); use more data or another ratio')

    @property
    def metainfo(self):
        return self.dataset.metainfo

    def full_init(self):
        """The wrapped set is built fully on construction."""

    def get_data_info(self, idx):
        return self.dataset.get_data_info(self.indices[idx])

    def __getitem__(self, idx):
        return self.dataset[self.indices[idx]]

    def __len__(self):
        return len(self.indices)

    def __repr__(self):
        return (f'SeededSplit({type(self.dataset).__name__}, part='
                f'{self.part!r}, {len(self)} of {len(self.dataset)}, '
                f'seed={self.seed})')
