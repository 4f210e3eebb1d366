# Copyright (c) mmext contributors. All rights reserved.
"""The official Oxford Flowers-17 / Flowers-102 files, and folder checks.

:data:`FLOWERS17` and :data:`FLOWERS102` list the files of the VGG pages
with their md5 sums; ``tools/dataset_converters/flowers{17,102}.py`` are
their command lines (:func:`~.archives.run_release`). The checks
(:func:`check_flowers17`, :func:`check_flowers102`) are the ones the data
sets run when they are built (:mod:`mmext.datasets.validation`), run on
every split, listing every problem instead of raising the first.
"""
import glob
import os.path as osp

from ..flowers import Flowers17, Flowers102
from ..validation import check_image_files, flowers17_data_list
from .archives import OfficialRelease

__all__ = ['FLOWERS17', 'FLOWERS102', 'check_flowers17', 'check_flowers102']

#: images in the real releases (a smaller count is noted, not refused)
FLOWERS17_IMAGES = 1360
FLOWERS102_IMAGES = 8189


def _read(dataset_cls, root, real, read):
    """Build the data set lazily and parse its split files with its method
    ``read``.

    Returns:
        tuple: The data set (None when ``root`` is no folder or a file is
        unreadable), summary lines (the image count), the parsed split
        files and problem lines.
    """
    if not osp.isdir(root):
        return None, [], None, [
            f'{root} is not a folder; expected layout:'
            f'\n{dataset_cls.LAYOUT}'
        ]
    on_disk = len(glob.glob(osp.join(root, 'jpg', 'image_*.jpg')))
    note = '' if on_disk == real else f' (the real set has {real})'
    summary = [f'{on_disk} images in jpg/{note}']
    dataset = dataset_cls(root, lazy_init=True, serialize_data=False)
    try:
        *parsed, problems = getattr(dataset, read)()
    except (OSError, KeyError, ValueError) as e:
        return None, summary, None, [str(e).strip('"')]
    return dataset, summary, parsed, problems


def check_flowers17(root):
    """Check a Flowers-17 folder: every key and index of
    ``datasplits.mat``, overlaps, classes, and every split's image files.

    Args:
        root (str): The folder (``jpg/``, ``datasplits.mat``).

    Returns:
        tuple[list, list]: Summary lines and problem lines (empty when the
        folder is fit to train on).
    """
    dataset, summary, parsed, problems = _read(Flowers17, root,
                                               FLOWERS17_IMAGES,
                                               'read_split_file')
    if dataset is None:
        return summary, problems
    splits, per_class = parsed
    missing = {}  # missing-images message -> the splits it hit
    for split_id in (1, 2, 3) if splits else ():
        sizes = []
        for split in ('train', 'val', 'test'):
            keys = [f'{p}{split_id}' for p in Flowers17.SPLIT_KEYS[split]]
            data_list = flowers17_data_list(splits, keys, per_class,
                                            dataset.img_prefix)
            try:
                check_image_files('Flowers17', root, data_list, 'fetch '
                                  'them again: flowers17.py download')
            except (FileNotFoundError, ValueError) as e:
                missing.setdefault(str(e),
                                   []).append(f'split {split_id} {split}')
            classes = len({d['gt_label'] for d in data_list})
            sizes.append(f'{split} {len(data_list)} ({classes} classes)')
        summary.append(f'split {split_id}: ' + ', '.join(sizes))
    problems += [
        f'{", ".join(where)}: {msg}' for msg, where in missing.items()
    ]
    return summary, problems


def check_flowers102(root):
    """Check a Flowers-102 folder: the ``.mat`` keys, ids, labels,
    overlaps and classes, every split's image files, and whether the
    leakage exclude file is there.

    Args:
        root (str): The folder (``jpg/``, ``imagelabels.mat``,
            ``setid.mat``).

    Returns:
        tuple[list, list]: Summary lines and problem lines.
    """
    dataset, summary, parsed, problems = _read(Flowers102, root,
                                               FLOWERS102_IMAGES,
                                               'read_split_files')
    if dataset is None:
        return summary, problems
    labels, ids = parsed
    sizes = []
    for split, key in (('train', 'trnid'), ('val', 'valid'),
                       ('test', 'tstid')) if ids else ():
        data_list = [
            dict(img_path=osp.join(root, 'jpg', f'image_{i:05d}.jpg'))
            for i in ids[key].tolist()
        ]
        try:
            check_image_files('Flowers102', root, data_list,
                              'fetch them again: flowers102.py download')
        except (FileNotFoundError, ValueError) as e:
            problems.append(f'{split}: {e}')
        classes = len(set(labels[ids[key] - 1].tolist()))
        sizes.append(f'{split} {len(data_list)} ({classes} classes)')
    summary.append(', '.join(sizes))
    exclude = osp.join(root, 'exclude_flowers17.txt')
    summary.append(f'exclude_flowers17.txt: '
                   f'{"present" if osp.isfile(exclude) else "absent"} '
                   f'(tools/dedup/find_leakage.py writes it)')
    return summary, problems


FLOWERS17 = OfficialRelease(
    name='Flowers17',
    title='Flowers-17',
    base_url='https://www.robots.ox.ac.uk/~vgg/data/flowers/17/',
    files=(('17flowers.tgz', 'b59a65d8d1a99cd66944d474e1289eab'),
           ('datasplits.mat', '4828cddfd0d803c5abbdebcb1e148a1e')),
    default_root='data/flowers17',
    check=check_flowers17)

FLOWERS102 = OfficialRelease(
    name='Flowers102',
    title='Flowers-102',
    base_url='https://www.robots.ox.ac.uk/~vgg/data/flowers/102/',
    files=(('102flowers.tgz', '52808999861908f626f3c1f4e79d11fa'),
           ('imagelabels.mat', 'e0620be6f572b9609742df49c70aed4d'),
           ('setid.mat', 'a5357ecc9cb78c4bef273ce3793fc85c')),
    default_root='data/flowers102',
    check=check_flowers102)
