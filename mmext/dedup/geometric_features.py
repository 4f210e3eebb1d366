# Copyright (c) mmext contributors. All rights reserved.
"""Local features (OpenCV ORB) of image files, parallel and cached, for the
geometric stage of the leakage check (:mod:`mmext.dedup.geometric`).

Every image is decoded by :func:`~mmext.dedup.hashing.load_image` (the same
skip reasons and pixel bound as the hash stage), resized so its longer side
is :data:`WORK_SIDE` pixels (small images are enlarged: ORB's 31-pixel
patches find nothing in a 64-pixel image), and described by at most
``max_features`` ORB keypoints: ``uint8`` descriptors of 32 bytes and
``float32`` positions in the resized image, ~40 bytes a keypoint, so 10 k
images x 500 keypoints hold ~200 MB.

What OpenCV lacks and this module adds: many files in parallel processes
with a progress bar, undecodable files reported with the reason, and a
cache (a table ``orb_features`` in the hash cache's SQLite file) keyed by
path + size + mtime + the extraction settings, so a re-run only extracts
new or changed files.
"""
import glob
import os
import os.path as osp
import sqlite3
from dataclasses import dataclass, field
from typing import List, Tuple

import cv2
import numpy as np

from .hashing import SkipImage, _file_key, load_image
from .textio import atomic_write, escape_path, unescape_path

__all__ = [
    'WORK_SIDE', 'MAX_FEATURES', 'MIN_SIDE', 'ImageFeatures', 'FeatureSet',
    'extract_features', 'features_of_image', 'trim_borders',
    'save_feature_shard', 'load_feature_shards'
]

#: Longer side (pixels) of the image the features are taken from.
WORK_SIDE = 320
#: ORB keypoints kept per image.
MAX_FEATURES = 500
#: ORB FAST thresholds, tried in turn until :data:`MIN_KEYPOINTS` are
#: found: 20 (OpenCV's default) finds < 100 keypoints in dim or soft photos
#: (skimage 'retina', 'moon'); 10 finds several hundred; the dim half of
#: skimage 'clock' needs 3.
FAST_THRESHOLDS = (10, 5, 3)
MIN_KEYPOINTS = 100
#: Shorter side (pixels, borders trimmed) below which an image gets no
#: features: enlarged 10x, a 32-pixel picture of a symmetric shape matches
#: its own 180° rotation and other shapes of its kind (the ``make demo``
#: flowers at 32 px gave one false pair, at 64 px none).
MIN_SIDE = 48
#: Largest deviation (0..255) from the corner colour of a border row or
#: column that :func:`trim_borders` removes (JPEG ringing stays below).
BORDER_TOLERANCE = 12

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orb_features (
    path TEXT NOT NULL, settings TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, width INTEGER, height INTEGER, box TEXT,
    xy BLOB, desc BLOB, reason TEXT, PRIMARY KEY (path, settings))
"""


@dataclass
class ImageFeatures:
    """ORB features of one image.

    Attributes:
        xy (np.ndarray): ``(N, 2)`` float32 keypoint positions in the
            resized image.
        desc (np.ndarray): ``(N, 32)`` uint8 ORB descriptors.
        size (tuple[int, int]): ``(width, height)`` of the resized image.
        box (tuple[int, int, int, int]): ``(x0, y0, x1, y1)`` of the
            resized part (borders trimmed) in the original image; an
            original position is ``box[:2] + xy * (box[2:] - box[:2]) /
            size``.
    """
    xy: np.ndarray
    desc: np.ndarray
    size: Tuple[int, int]
    box: Tuple[int, int, int, int] = (0, 0, 0, 0)

    def to_original(self, xy):
        """Positions in the resized image -> pixels of the original."""
        x0, y0, x1, y1 = self.box
        scale = np.array([(x1 - x0) / self.size[0], (y1 - y0) / self.size[1]])
        return np.asarray(xy, np.float64).reshape(-1, 2) * scale + (x0, y0)


@dataclass
class FeatureSet:
    """Features of a list of files.

    Attributes:
        paths (list[str]): Files with features, in input order.
        features (list[ImageFeatures]): One per path.
        skipped (list[tuple[str, str]]): ``(path, reason)`` of the others.
        num_cached (int): Inputs answered from the cache.
    """
    paths: List[str]
    features: List[ImageFeatures]
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    num_cached: int = 0

    def __len__(self):
        return len(self.paths)


def _settings(work_side, max_features):
    return (f'orb2;side={work_side};min={MIN_SIDE};n={max_features};'
            f'fast={FAST_THRESHOLDS};trim={BORDER_TOLERANCE};'
            f'opencv={cv2.__version__}')


def trim_borders(arr, tolerance=BORDER_TOLERANCE):
    """``(x0, y0, x1, y1)`` of ``arr`` without uniform border rows /
    columns (letterboxing, frames in the corner colour), so a letterboxed
    copy is described at the scale of its source; at most 3/4 of each side
    goes."""
    h, w = arr.shape
    corner = int(np.median([arr[0, 0], arr[0, -1], arr[-1, 0], arr[-1, -1]]))
    off = np.abs(arr.astype(np.int16) - corner) > tolerance
    rows, cols = np.flatnonzero(off.any(1)), np.flatnonzero(off.any(0))
    if not len(rows) or rows[-1] - rows[0] + 1 < h // 4 or \
            cols[-1] - cols[0] + 1 < w // 4:
        return 0, 0, w, h
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def features_of_image(gray, work_side=WORK_SIDE, max_features=MAX_FEATURES):
    """ORB features of a grayscale image (PIL 'L' or a 2-D uint8 array),
    borders trimmed (:func:`trim_borders`).

    Raises:
        SkipImage: No keypoint found (a flat or tiny image).
    """
    arr = np.asarray(gray, dtype=np.uint8)
    box = trim_borders(arr)
    arr = arr[box[1]:box[3], box[0]:box[2]]
    h, w = arr.shape[:2]
    if min(w, h) < MIN_SIDE:
        raise SkipImage(f'too small for local features ({w}x{h} without '
                        f'borders, shorter side < {MIN_SIDE} px): only the '
                        'hash stage checks it')
    scale = work_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    arr = cv2.resize(
        arr,
        size,
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    for fast in FAST_THRESHOLDS:
        orb = cv2.ORB_create(nfeatures=max_features, fastThreshold=fast)
        keypoints, desc = orb.detectAndCompute(arr, None)
        if len(keypoints) >= MIN_KEYPOINTS:
            break
    if desc is None or not len(keypoints):
        raise SkipImage('no ORB keypoint (flat or tiny image): nothing for '
                        'the geometric stage to match')
    xy = np.array([k.pt for k in keypoints], dtype=np.float32)
    return ImageFeatures(xy, np.ascontiguousarray(desc, np.uint8), size, box)


def _extract_file(task):
    path, work_side, max_features = task
    try:
        return features_of_image(load_image(path), work_side,
                                 max_features), None
    except SkipImage as e:
        return None, str(e)


class _FeatureCache:
    """Rows of ``orb_features``; a row holds while size and mtime hold."""

    def __init__(self, cache_file, settings):
        try:
            self.db = sqlite3.connect(cache_file, timeout=30)
            self.db.execute(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise ValueError(f'feature cache {cache_file} is not a readable '
                             f'SQLite file ({e}); delete it or pass another '
                             '--cache path') from e
        self.settings = settings

    def get(self, path, size, mtime_ns):
        row = self.db.execute(
            'SELECT size, mtime_ns, width, height, box, xy, desc, reason FROM '
            'orb_features WHERE path=? AND settings=?',
            (escape_path(path), self.settings)).fetchone()
        if row is None or row[0] != size or row[1] != mtime_ns:
            return None
        _, _, w, h, box, xy, desc, reason = row
        if reason is not None:
            return None, reason
        xy = np.frombuffer(xy, np.float32).reshape(-1, 2)
        desc = np.frombuffer(desc, np.uint8).reshape(-1, 32)
        box = tuple(int(v) for v in box.split(','))
        return ImageFeatures(xy, desc, (w, h), box), None

    def put_many(self, rows):
        records = []
        for path, (size, mtime_ns), (feat, reason) in rows:
            blobs = ((None, ) * 5 if feat is None else
                     (*feat.size, ','.join(map(str, feat.box)),
                      feat.xy.tobytes(), feat.desc.tobytes()))
            records.append((escape_path(path), self.settings, size, mtime_ns,
                            *blobs, reason))
        with self.db:
            self.db.executemany(
                'INSERT OR REPLACE INTO orb_features VALUES '
                '(?,?,?,?,?,?,?,?,?,?)', records)

    def close(self):
        self.db.close()


def extract_features(paths,
                     work_side=WORK_SIDE,
                     max_features=MAX_FEATURES,
                     workers=2,
                     cache_file=None,
                     progress=True,
                     desc='orb'):
    """ORB features of image files, in parallel, with a cache.

    Args:
        paths (Sequence[str]): Image files.
        work_side (int): Longer side of the resized image. Defaults to
            :data:`WORK_SIDE`.
        max_features (int): Keypoints per image. Defaults to
            :data:`MAX_FEATURES`.
        workers (int): Processes (0 or 1: this process). Defaults to 2.
        cache_file (str, optional): SQLite cache (the hash cache's file
            serves). Defaults to None (no cache).
        progress (bool): Show a progress bar. Defaults to True.
        desc (str): Progress bar label. Defaults to 'orb'.

    Returns:
        FeatureSet: Paths with features (input order) and skipped paths.
    """
    from .hashing import _map
    paths = [str(p) for p in paths]
    outputs = [None] * len(paths)
    keys = [_file_key(p) for p in paths]
    cache = (
        _FeatureCache(cache_file, _settings(work_side, max_features))
        if cache_file else None)
    todo = []
    for i, (path, key) in enumerate(zip(paths, keys)):
        if key is None:
            outputs[i] = (None, 'file not found or not accessible')
        elif cache is not None and (hit := cache.get(osp.abspath(path), *
                                                     key)) is not None:
            outputs[i] = hit
        else:
            todo.append(i)
    num_cached = len(paths) - len(todo) - sum(k is None for k in keys)
    tasks = [(paths[i], work_side, max_features) for i in todo]
    rows = []
    for i, out in zip(todo, _map(tasks, workers, progress, desc,
                                 _extract_file)):
        outputs[i] = out
        if cache is not None and not (out[1] or '').startswith('too large'):
            rows.append((osp.abspath(paths[i]), keys[i], out))
            if len(rows) >= 500:  # an interrupted run keeps its work
                cache.put_many(rows)
                rows = []
    if cache is not None:
        cache.put_many(rows)
        cache.close()
    kept = [i for i, o in enumerate(outputs) if o[1] is None]
    return FeatureSet([paths[i] for i in kept], [outputs[i][0] for i in kept],
                      [(paths[i], o[1])
                       for i, o in enumerate(outputs) if o[1] is not None],
                      num_cached)


def save_feature_shard(folder, name, all_paths, i, n, extract_fn):
    """Extract shard ``i`` of ``n`` of ``all_paths`` (strided, as the hash
    shards of :mod:`mmext.dedup.shards`) with ``extract_fn(paths) ->
    FeatureSet`` into ``<folder>/<name>.shard-i-of-n.npz`` (arrays and
    strings only, read back without pickle)."""
    from .shards import _fingerprint, shard_file
    res = extract_fn([all_paths[k] for k in range(i, len(all_paths), n)])
    feats = res.features
    os.makedirs(folder, exist_ok=True)
    out = shard_file(folder, name, i, n)
    with atomic_write(out, 'wb') as f:
        np.savez(
            f,
            paths=np.array([escape_path(p) for p in res.paths], dtype=str),
            counts=np.array([len(x.desc) for x in feats], np.int64),
            xy=np.concatenate([x.xy for x in feats]) if feats else np.zeros(
                (0, 2), np.float32),
            desc=np.concatenate([x.desc
                                 for x in feats]) if feats else np.zeros(
                                     (0, 32), np.uint8),
            sizes=np.array([x.size for x in feats], np.int64).reshape(-1, 2),
            boxes=np.array([x.box for x in feats], np.int64).reshape(-1, 4),
            skipped_paths=np.array([escape_path(p) for p, _ in res.skipped],
                                   dtype=str),
            skipped_reasons=np.array([r for _, r in res.skipped], dtype=str),
            fingerprint=np.array(_fingerprint(all_paths)))
    return out, res


def load_feature_shards(folder, name, all_paths):
    """Merge the feature shards :func:`save_feature_shard` wrote into one
    :class:`FeatureSet` in input order.

    Raises:
        ValueError: A shard is missing, stale (another input list) or
            from runs with different shard counts; the message names the
            folder.
    """
    from .shards import _fingerprint, shard_file
    found = sorted(
        glob.glob(
            osp.join(
                glob.escape(folder), f'{glob.escape(name)}'
                '.shard-*-of-*.npz')))
    counts = {int(f.rsplit('-of-', 1)[1][:-4]) for f in found}
    if len(counts) != 1:
        raise ValueError(
            f'{folder} holds no {name} feature shards or shards of several '
            f'runs ({sorted(counts)}): run --shard i/n --stage geometric '
            'for every i (and remove stale shards)')
    n = counts.pop()
    digest = _fingerprint(all_paths)
    order = {escape_path(p): k for k, p in enumerate(all_paths)}
    items, skipped = [], []
    for i in range(n):
        path = shard_file(folder, name, i, n)
        if not osp.isfile(path):
            raise ValueError(f'{name} feature shard {i} of {n} is missing in '
                             f'{folder} (job failed or still running?)')
        with np.load(path, allow_pickle=False) as z:
            if str(z['fingerprint']) != digest:
                raise ValueError(f'the {name} feature shards in {folder} '
                                 'were made from another list of inputs: '
                                 're-run the shards')
            ends = np.cumsum(z['counts'])
            for k, p in enumerate(z['paths'].tolist()):
                s = slice(ends[k] - z['counts'][k], ends[k])
                items.append((order[p], unescape_path(p),
                              ImageFeatures(z['xy'][s], z['desc'][s],
                                            tuple(z['sizes'][k].tolist()),
                                            tuple(z['boxes'][k].tolist()))))
            skipped += [(order[p], unescape_path(p), r) for p, r in zip(
                z['skipped_paths'].tolist(), z['skipped_reasons'].tolist())]
    items.sort(key=lambda t: t[0])
    skipped.sort(key=lambda t: t[0])
    return FeatureSet([p for _, p, _ in items], [f for _, _, f in items],
                      [(p, r) for _, p, r in skipped])
