# Copyright (c) mmext contributors. All rights reserved.
"""UPMC Food-101 (Wang et al., "Recipe recognition with large multimodal
food dataset", ICME workshops 2015): recipe web pages, image + title text,
101 Food-101 classes."""
import csv
import io
import os.path as osp

from mmengine.logging import print_log

from mmext.registry import DATASETS
from . import image_text
from .image_text import (ImageTextDataset, RecordError, plain_file_name,
                         read_annotation, show)

__all__ = ['UPMCFood101', 'FOOD101_CLASSES']

#: the 101 Food-101 classes, alphabetical (label order, folder names)
FOOD101_CLASSES = (
    'apple_pie', 'baby_back_ribs', 'baklava', 'beef_carpaccio', 'beef_tartare',
    'beet_salad', 'beignets', 'bibimbap', 'bread_pudding', 'breakfast_burrito',
    'bruschetta', 'caesar_salad', 'cannoli', 'caprese_salad', 'carrot_cake',
    'ceviche', 'cheese_plate', 'cheesecake', 'chicken_curry',
    'chicken_quesadilla', 'chicken_wings', 'chocolate_cake',
    'chocolate_mousse', 'churros', 'clam_chowder', 'club_sandwich',
    'crab_cakes', 'creme_brulee', 'croque_madame', 'cup_cakes', 'deviled_eggs',
    'donuts', 'dumplings', 'edamame', 'eggs_benedict', 'escargots', 'falafel',
    'filet_mignon', 'fish_and_chips', 'foie_gras', 'french_fries',
    'french_onion_soup', 'french_toast', 'fried_calamari', 'fried_rice',
    'frozen_yogurt', 'garlic_bread', 'gnocchi', 'greek_salad',
    'grilled_cheese_sandwich', 'grilled_salmon', 'guacamole', 'gyoza',
    'hamburger', 'hot_and_sour_soup', 'hot_dog', 'huevos_rancheros', 'hummus',
    'ice_cream', 'lasagna', 'lobster_bisque', 'lobster_roll_sandwich',
    'macaroni_and_cheese', 'macarons', 'miso_soup', 'mussels', 'nachos',
    'omelette', 'onion_rings', 'oysters', 'pad_thai', 'paella', 'pancakes',
    'panna_cotta', 'peking_duck', 'pho', 'pizza', 'pork_chop', 'poutine',
    'prime_rib', 'pulled_pork_sandwich', 'ramen', 'ravioli', 'red_velvet_cake',
    'risotto', 'samosa', 'sashimi', 'scallops', 'seaweed_salad',
    'shrimp_and_grits', 'spaghetti_bolognese', 'spaghetti_carbonara',
    'spring_rolls', 'steak', 'strawberry_shortcake', 'sushi', 'tacos',
    'takoyaki', 'tiramisu', 'tuna_tartare', 'waffles')


@DATASETS.register_module()
class UPMCFood101(ImageTextDataset):
    """UPMC Food-101 in its official layout and train/test split.

    ``texts/{train,test}_titles.csv`` (no header) holds one row per image:
    image file name, text (the page title), class name; the image is
    ``images/{train,test}/<class>/<image file name>``. The official split
    has no validation part (the ViLBERT thesis code splits its own
    trainval CSV 80/20 with seed 46; use ``indices`` or a split file for a
    validation subset). A row with another column count, an unknown class,
    an image name that is not a plain file name or a field longer than
    :data:`~mmext.datasets.image_text.MAX_CSV_FIELD` characters (Python's
    csv stops at 131072 with a bare ``_csv.Error``) raises
    :class:`RecordError` naming the CSV and its line.

    ``data_info`` keys: ``img_path``, ``text``, ``id`` (``<class>/<image
    name>``; a repeated row is reported and read once), ``gt_label``
    (class index); mmengine adds ``sample_idx``. Score it with
    mmpretrain's ``Accuracy`` and ``SingleLabelMetric(items=('f1-score',),
    average='macro')``.

    Args:
        data_root (str): Folder with ``images/`` and ``texts/``.
        split (str): 'train' or 'test'. Defaults to 'train'.
        **kwargs: See :class:`ImageTextDataset`.

    Example:
        >>> from mmext.testing import make_upmc_food101
        >>> root = make_upmc_food101('work_dirs/ex_upmc', num_classes=3)
        >>> ds = UPMCFood101(str(root), split='test')
        >>> ds.get_data_info(0)['gt_label'], len(ds.CLASSES)
        (0, 101)
    """

    METAINFO = {'classes': FOOD101_CLASSES}
    LAYOUT = (
        'data/upmc_food101/\n'
        '├── images/train/apple_pie/apple_pie_0.jpg ...  (one folder per '
        'class)\n'
        '├── images/test/<class>/<name>.jpg\n'
        '└── texts/train_titles.csv, test_titles.csv  (no header: '
        'image name, text, class)')

    def __init__(self, data_root, split='train', **kwargs):
        if split not in ('train', 'test'):
            raise ValueError(f"UPMCFood101: split must be 'train' or "
                             f"'test', got {split!r}")
        self.split = split
        super().__init__(
            data_root,
            ann_file=osp.join('texts', f'{split}_titles.csv'),
            test_mode=split == 'test',
            **kwargs)

    def load_records(self):
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'UPMCFood101: no {self.ann_file}; expected layout:\n'
                f'{self.LAYOUT}')
        content = read_annotation('UPMCFood101', self.ann_file)
        label_of = {c: i for i, c in enumerate(FOOD101_CLASSES)}
        image_root = osp.join(self.data_root, 'images', self.split)
        data_list, seen, repeats = [], {}, []
        # csv's field limit is process-wide: raised for this read only
        limit = image_text.MAX_CSV_FIELD
        old_limit = csv.field_size_limit(limit)
        reader = csv.reader(io.StringIO(content, newline=''))
        try:
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                name, text, cls = self._check_row(row, line, label_of)
                key = f'{cls}/{name}'
                if key in seen:
                    repeats.append((line, seen[key]))
                    continue
                seen[key] = line
                data_list.append(
                    dict(
                        img_path=osp.join(image_root, cls, name),
                        text=text,
                        id=key,
                        gt_label=label_of[cls]))
        except csv.Error as e:
            raise RecordError(
                f'UPMCFood101: {self.ann_file}:{reader.line_num}: {e} (at '
                f'most {limit} characters per field); a quote left '
                'open makes the rest of the file one field: check the '
                'quoting') from None
        finally:
            csv.field_size_limit(old_limit)
        if repeats:
            print_log(
                f'UPMCFood101: {len(repeats)} rows of '
                f'{self.ann_file} repeat an earlier image (e.g. line '
                f'{repeats[0][0]} = line {repeats[0][1]}); only the '
                'first is kept',
                logger='current',
                level=30)
        self.num_repeats = len(repeats)
        return data_list

    def _check_row(self, row, line, label_of):
        where = f'UPMCFood101: {self.ann_file}:{line}'
        if len(row) != 3:
            raise RecordError(
                f'{where}: {len(row)} columns, 3 expected (image '
                'name, text, class; quote texts with commas)')
        name, text, cls = row
        if cls not in label_of:
            raise RecordError(f'{where}: unknown class {show(cls, 40)}; '
                              "expected a Food-101 class name like "
                              "'apple_pie'")
        if not plain_file_name(name):
            raise RecordError(f'{where}: image name {show(name, 40)} is not '
                              'a plain file name')
        return name, text, cls
