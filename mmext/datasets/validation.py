# Copyright (c) mmext contributors. All rights reserved.
"""Checks that refuse data which would train on wrong labels.

A split file with an index out of range, a float index, a duplicate, an
image in both train and test, or a class with no image loads without
complaint in mmpretrain (or fails deep inside an epoch) and silently trains
or evaluates on the wrong images. Here each data set file is checked when
the data set is built, i.e. before training starts, and the first violation
is one line naming the file, the key (or study) and the first bad value.

The same checkers serve the data sets (which raise the first problem) and
``tools/dataset_converters/flowers{17,102}.py verify`` (which prints them
all), so the two cannot disagree.
"""
import json
import os
import os.path as osp

import numpy as np
import scipy.io

__all__ = [
    'AnnotationError', 'read_mat', 'raise_first', 'check_image_files',
    'flowers17_problems', 'flowers17_data_list', 'flowers102_problems',
    'load_r2gen_annotation', 'R2GEN_SPLITS'
]

R2GEN_SPLITS = ('train', 'val', 'test')


class AnnotationError(ValueError):
    """``annotation.json`` lacks the requested split or has a bad entry."""


def raise_first(problems, error=ValueError):
    """Raise ``error`` with the first of ``problems``, if any."""
    if problems:
        raise error(problems[0])


def _first(values, n=5):
    """``[v1, v2, ...]`` of the first ``n`` values (ints shown as ints)."""
    shown = [
        int(v) if float(v).is_integer() else float(v)
        for v in np.asarray(values).ravel()[:n]
    ]
    more = f' and {len(values) - n} more' if len(values) > n else ''
    return f'{shown}{more}'


def check_image_files(name, data_root, data_list, fix, show=5):
    """Raise FileNotFoundError when images of ``data_list`` are missing, or
    ValueError when one is no regular file (a FIFO would block the loader),
    with the count and the first ``show`` of them relative to
    ``data_root``."""
    missing = [
        d['img_path'] for d in data_list if not osp.isfile(d['img_path'])
    ]
    special = [p for p in missing if osp.exists(p)]
    if special:
        from mmext.utils.fileio import file_kind
        kind = file_kind(os.stat(special[0]).st_mode)
        raise ValueError(
            f'{name}: {len(special)} of {len(data_list)} images listed by '
            f'the split file are no regular file in {data_root}, first '
            f'{osp.relpath(special[0], data_root)} ({kind}); replace them '
            'with the image files')
    if missing:
        first = ', '.join(osp.relpath(p, data_root) for p in missing[:show])
        more = f' and {len(missing) - show} more' if len(missing) > show \
            else ''
        raise FileNotFoundError(
            f'{name}: {len(missing)} of {len(data_list)} images listed by '
            f'the split file are missing in {data_root}: {first}{more}; '
            f'{fix}')


def read_mat(name, path, keys, data_root, layout, expected=None):
    """The arrays ``keys`` of a MAT v4/v5 file, as stored.

    Raises:
        FileNotFoundError: No such file (with the expected layout).
        ValueError: Not a MAT v4/v5 file.
        KeyError: A key is missing (naming the keys expected).
    """
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
    for key in keys:
        if key not in mat:
            raise KeyError(f"{name}: {fname} has no key '{key}' (expected "
                           f"{expected or ', '.join(keys)}) in {data_root}")
    return {key: mat[key] for key in keys}


def _index_row(where, key, array):
    """``(int64 1-D ids, problem)``: a key must be a non-empty 1-D array or
    a single row of integers."""
    array = np.asarray(array)
    if array.ndim > 2 or (array.ndim == 2 and array.shape[0] != 1):
        return None, (f"{where} key '{key}' has shape {array.shape}; "
                      'expected one row (1 x N) of 1-based indices')
    if array.size == 0:
        return None, f"{where} key '{key}' is empty"
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        return None, (f"{where} key '{key}' holds {array.dtype} values, "
                      'not integers')
    values = array.astype(np.float64).ravel()
    ids = np.nan_to_num(values, nan=0.5).astype(np.int64)
    bad = values[~np.isfinite(values) | (ids != values)]
    if bad.size:
        return None, (f"{where} key '{key}' holds non-integer values, first "
                      f'{_first(bad)}')
    return ids, None


def _id_problems(where, key, ids, high, what, range_note=''):
    """Range and duplicate problems of one key's 1-based ids."""
    bad = ids[(ids < 1) | (ids > high)]
    if bad.size:
        return [
            f"{where} key '{key}' has {what} out of range 1..{high}"
            f'{range_note}: {_first(bad)}'
        ]
    values, counts = np.unique(ids, return_counts=True)
    dup = values[counts > 1]
    if dup.size:
        first = ids[np.isin(ids, dup)][0]
        return [
            f"{where} key '{key}' lists {dup.size} {what} more than "
            f'once, first {int(first)}'
        ]
    return []


def _disjoint_problems(where, parts):
    """``parts``: [(label, key, ids)]; one problem per overlapping pair."""
    problems = []
    for i, (name_a, key_a, a) in enumerate(parts):
        for name_b, key_b, b in parts[i + 1:]:
            shared = np.intersect1d(a, b)
            if shared.size:
                problems.append(
                    f'{where}: {shared.size} images are in both {name_a} '
                    f"and {name_b} (keys '{key_a}', '{key_b}'), first "
                    f'{int(shared[0])}')
    return problems


def _class_problems(where, key, labels, num_classes, class_names):
    missing = np.setdiff1d(np.arange(num_classes), labels)
    if missing.size:
        first = int(missing[0])
        return [
            f"{where} key '{key}' has no image of {missing.size} of "
            f'{num_classes} classes, first class {first} '
            f'({class_names[first]})'
        ]
    return []


def flowers17_problems(mat,
                       data_root,
                       class_names,
                       images_per_class=None,
                       fix='',
                       img_prefix=None):
    """Every problem of a Flowers-17 ``datasplits.mat``.

    Checks each of ``trn1..3``, ``val1..3``, ``tst1..3``: one row of
    integers, within ``1..17 * images_per_class`` (inferred from the largest
    index when None), no index twice, every class present; and that the
    train, val and test keys of one split id share no image.

    Args:
        mat (dict): Key -> array as stored (see :func:`read_mat`).
        data_root (str): Named in the messages.
        class_names (Sequence[str]): The 17 class names.
        images_per_class (int, optional): Images per class. Defaults to
            None.
        fix (str): Appended to each message. Defaults to ''.
        img_prefix (str, optional): The image folder. When given and the
            images per class are inferred, the largest index must name an
            image file: a stray index past the last image would otherwise
            shift every label. Defaults to None.

    Returns:
        tuple[dict | None, int | None, list[str]]: the ids of each key
        (None when a key is unusable), images per class, and the problems
        (one-line messages), empty for a valid file.
    """
    where = f'Flowers17: datasplits.mat in {data_root}'
    suffix = f'; {fix}' if fix else ''
    num_classes = len(class_names)
    splits, problems = {}, []
    for key, array in mat.items():
        splits[key], problem = _index_row(where, key, array)
        if problem:
            problems.append(problem + suffix)
    if problems:
        return None, None, problems
    per_class = images_per_class
    if per_class is None:
        largest = max(int(ids.max()) for ids in splits.values())
        if largest % num_classes:
            return None, None, [
                f'Flowers17: the largest index in datasplits.mat is '
                f'{largest}, not a multiple of {num_classes} classes, so the '
                f'class of an image cannot be inferred in {data_root}; pass '
                f'images_per_class (80 for the real set)'
            ]
        last = None if img_prefix is None else osp.join(
            img_prefix, f'image_{largest:04d}.jpg')
        if last is not None and not osp.isfile(last):
            key = next(k for k, ids in splits.items() if largest in ids)
            return None, None, [
                f"{where} key '{key}' holds the largest index, {largest}, "
                f'but {osp.relpath(last, data_root)} is no image file; the '
                'images per class are inferred from it: restore the image '
                f'or pass images_per_class (80 for the real set){suffix}'
            ]
        per_class = largest // num_classes
    high = per_class * num_classes
    for key, ids in splits.items():
        problems += _id_problems(where, key, ids, high, 'indices',
                                 f' ({per_class} per class)') or \
            _class_problems(where, key, (ids - 1) // per_class,
                            num_classes, class_names)
    for split_id in sorted({k[-1] for k in splits}):
        parts = [(name, f'{prefix}{split_id}', splits[f'{prefix}{split_id}'])
                 for name, prefix in (('test', 'tst'), ('train', 'trn'),
                                      ('val', 'val'))
                 if f'{prefix}{split_id}' in splits]
        problems += _disjoint_problems(f'{where} split {split_id}', parts)
    return splits, per_class, [p + suffix for p in problems]


def flowers17_data_list(splits, keys, per_class, img_prefix):
    """``[{img_path, gt_label}]`` of the ids of ``keys``, in order (labels
    from the class-order layout: ``(index - 1) // per_class``); indices out
    of range are left out (the checks above report them)."""
    high = 17 * per_class
    return [
        dict(
            img_path=osp.join(img_prefix, f'image_{i:04d}.jpg'),
            gt_label=(i - 1) // per_class) for key in keys
        for i in splits[key].tolist() if 1 <= i <= high
    ]


def flowers102_problems(labels, sets, data_root, class_names, fix=''):
    """Every problem of Flowers-102's ``imagelabels.mat`` and ``setid.mat``.

    ``labels`` must be one row of integers within ``1..102`` with every
    class present; each of ``trnid``, ``valid``, ``tstid`` one row of image
    ids within ``1..len(labels)``, no id twice, every class present, and no
    image in two of them.

    Args:
        labels (np.ndarray): ``imagelabels.mat`` ``labels`` as stored.
        sets (dict): ``setid.mat`` key -> array as stored.
        data_root (str): Named in the messages.
        class_names (Sequence[str]): The 102 class names.
        fix (str): Appended to each message. Defaults to ''.

    Returns:
        tuple[np.ndarray | None, dict | None, list[str]]: 1-D labels, the
        ids of each set, and the problems (empty for valid files).
    """
    num_classes = len(class_names)
    labels_at = f'Flowers102: imagelabels.mat in {data_root}'
    sets_at = f'Flowers102: setid.mat in {data_root}'
    suffix = f'; {fix}' if fix else ''
    labels, problem = _index_row(labels_at, 'labels', labels)
    problems = [problem] if problem else []
    if labels is not None:
        bad = labels[(labels < 1) | (labels > num_classes)]
        if bad.size:
            problems.append(f"{labels_at} key 'labels' has labels outside "
                            f'1..{num_classes}: {_first(bad)}')
        else:
            problems += _class_problems(labels_at, 'labels', labels - 1,
                                        num_classes, class_names)
    ids = {}
    for key, array in sets.items():
        ids[key], problem = _index_row(sets_at, key, array)
        if problem:
            problems.append(problem)
    if problems:
        return None, None, [p + suffix for p in problems]
    for key, values in ids.items():
        problems += _id_problems(
            sets_at, key, values, labels.size, 'image ids',
            ' (the length of imagelabels.mat labels)') or _class_problems(
                sets_at, key, labels[values - 1] - 1, num_classes, class_names)
    names = {'trnid': 'train', 'valid': 'val', 'tstid': 'test'}
    problems += _disjoint_problems(sets_at, [(names.get(k, k), k, v)
                                             for k, v in ids.items()])
    return labels, ids, [p + suffix for p in problems]


def load_r2gen_annotation(path,
                          name,
                          num_views=1,
                          need_train=False,
                          layout=''):
    """Read and check an R2Gen ``annotation.json`` (IU X-ray, MIMIC-CXR).

    Every entry of every split present (``train``, ``val``, ``test``) must be
    an object with a non-empty ``report`` string and at least
    ``num_views`` non-empty ``image_path`` strings; a study id may appear
    once only, in one split (a study in train and test is a leak).

    Args:
        path (str): The file.
        name (str): Data set name for the messages.
        num_views (int): Image paths needed per entry. Defaults to 1.
        need_train (bool): The vocabulary is built from this file, so the
            train split must exist and be non-empty. Defaults to False.
        layout (str): Expected layout, shown when the file is missing.

    Returns:
        dict: The parsed annotation.

    Raises:
        FileNotFoundError: No such file.
        AnnotationError: Unreadable JSON or a bad entry: one line naming the
            file, the split and the study.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{name}: annotation file {path} not found; '
                                f'expected layout: {layout}')
    try:
        with open(path, encoding='utf-8') as f:
            ann = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AnnotationError(
            f'{name}: {path} is not readable JSON ({e}); re-export it as '
            'UTF-8 JSON in R2Gen\'s format ({"train": [...], ...})') from None
    if not isinstance(ann, dict):
        raise AnnotationError(
            f'{name}: {path} holds a JSON {type(ann).__name__}, expected an '
            'object {"train": [...], "val": [...], "test": [...]}')
    if need_train and not ann.get('train'):
        state = 'has no split' if 'train' not in ann else 'has an empty split'
        raise AnnotationError(
            f"{name}: {path} {state} 'train'; the vocabulary is built from "
            'the train reports: add them, or pass the tokenizer a vocab')
    seen = {}
    for split in R2GEN_SPLITS:
        entries = ann.get(split, [])
        if not isinstance(entries, list):
            raise AnnotationError(
                f"{name}: {path} split '{split}' is a JSON "
                f'{type(entries).__name__}, expected a list of studies')
        for i, entry in enumerate(entries):
            sid = entry.get('id', f'#{i}') if isinstance(entry, dict) \
                else f'#{i}'
            sid = sid if isinstance(sid, (str, int)) else repr(sid)
            problem = _entry_problem(entry, num_views)
            if problem is None and sid in seen:
                problem = (f"is also entry {seen[sid][1]} of split "
                           f"'{seen[sid][0]}' (a study in two places "
                           'trains on evaluation data)')
            if problem:
                raise AnnotationError(
                    f"{name}: {path} split '{split}' entry {sid!r} "
                    f'{problem}; fix or remove the entry')
            seen[sid] = (split, i)
    return ann


def _entry_problem(entry, num_views):
    if not isinstance(entry, dict):
        return f'is a JSON {type(entry).__name__}, not an object'
    report = entry.get('report')
    if report is None:
        return 'has report null (or none)'
    if not isinstance(report, str):
        return f'has a report of JSON type {type(report).__name__}, not text'
    if not report.strip():
        return 'has an empty report'
    paths = entry.get('image_path')
    if not isinstance(paths, list) or not all(
            isinstance(p, str) and p for p in paths):
        return 'has image_path that is not a list of file names'
    if len(paths) < num_views:
        return f'has {len(paths)} image path(s), {num_views} needed'
    return None
