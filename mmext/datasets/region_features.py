# Copyright (c) mmext contributors. All rights reserved.
"""BUTD region features on disk: per-image ``.npz`` and the BUTD TSV.

``.npz`` (one per image, written by ``tools/feature_extraction/
extract_regions.py``, read with ``allow_pickle=False``):

- ``features`` (N, 2048) float32 pool5, ``boxes`` (N, 4) float32 x1, y1,
  x2, y2 in original-image pixels (the un-regressed ROIs, as BUTD),
- ``image_w``, ``image_h``, ``num_boxes`` (ints), ``image_id`` (str),
- ``object_ids`` / ``object_scores`` (N,): best non-background class,
  ``attr_ids`` / ``attr_scores`` (N,): best attribute (not index 0),
- ``cls_prob`` (N, 1601) float32 class distribution (ViLBERT's
  masked-region target), ``max_conf`` (N,) the selection score.

TSV (peteanderson80/bottom-up-attention ``tools/generate_tsv.py``): tab-
separated ``image_id, image_w, image_h, num_boxes, boxes, features``; boxes
and features are base64 of float32 (N, 4) / (N, 2048) arrays.

ViLBERT reads a region's 5-d location as :func:`region_locations`.
"""
import base64
import csv
import os
import os.path as osp
import sys

import numpy as np

__all__ = [
    'TSV_FIELDS', 'load_region_features', 'iter_tsv_regions',
    'region_locations', 'save_region_npz', 'tsv_row', 'RegionFileError'
]

TSV_FIELDS = [
    'image_id', 'image_w', 'image_h', 'num_boxes', 'boxes', 'features'
]


class RegionFileError(ValueError):
    """A region file is malformed."""


def region_locations(boxes, image_w, image_h):
    """ViLBERT's 5-d region location: ``x1/w, y1/h, x2/w, y2/h`` and the
    box area as a fraction of the image, ``(x2-x1)(y2-y1) / (w h)``.

    Args:
        boxes (np.ndarray): (N, 4) x1, y1, x2, y2 in pixels.
        image_w (int | float): Image width.
        image_h (int | float): Image height.

    Returns:
        np.ndarray: (N, 5) float32.

    Example:
        >>> region_locations(np.array([[0., 0., 50., 20.]]), 100, 40)
        array([[0.  , 0.  , 0.5 , 0.5 , 0.25]], dtype=float32)
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    loc = np.zeros((len(boxes), 5), np.float32)
    loc[:, [0, 2]] = boxes[:, [0, 2]] / float(image_w)
    loc[:, [1, 3]] = boxes[:, [1, 3]] / float(image_h)
    loc[:, 4] = (loc[:, 2] - loc[:, 0]) * (loc[:, 3] - loc[:, 1])
    return loc


def save_region_npz(path, record):
    """Write ``record`` (the fields above) atomically: a crash leaves no
    half-written ``.npz`` that a resumed run would skip."""
    tmp = f'{path}.tmp{os.getpid()}.npz'
    np.savez(tmp, **{k: np.asarray(v) for k, v in record.items()})
    os.replace(tmp, path)


def tsv_row(record):
    """The BUTD TSV row (a dict over :data:`TSV_FIELDS`) of ``record``."""
    boxes = np.ascontiguousarray(record['boxes'], dtype=np.float32)
    feats = np.ascontiguousarray(record['features'], dtype=np.float32)
    return dict(
        image_id=str(record['image_id']),
        image_w=int(record['image_w']),
        image_h=int(record['image_h']),
        num_boxes=len(boxes),
        boxes=base64.b64encode(boxes.tobytes()).decode('ascii'),
        features=base64.b64encode(feats.tobytes()).decode('ascii'))


def _decode_row(row, path):
    try:
        n = int(row['num_boxes'])
        boxes = np.frombuffer(
            base64.b64decode(row['boxes']), dtype=np.float32).reshape(n, 4)
        feats = np.frombuffer(
            base64.b64decode(row['features']),
            dtype=np.float32).reshape(n, -1)
        return dict(
            image_id=row['image_id'],
            image_w=int(row['image_w']),
            image_h=int(row['image_h']),
            num_boxes=n,
            boxes=boxes.copy(),
            features=feats.copy())
    except (KeyError, TypeError, ValueError) as e:
        raise RegionFileError(
            f'{path}: row of image {row.get("image_id")!r} is not a BUTD '
            f'TSV row ({e}); expected fields {TSV_FIELDS}') from None


def iter_tsv_regions(path):
    """Yield one dict per row of a BUTD TSV (fields as
    :func:`load_region_features`)."""
    csv.field_size_limit(sys.maxsize)
    with open(path, newline='') as f:
        for row in csv.DictReader(f, delimiter='\t', fieldnames=TSV_FIELDS):
            yield _decode_row(row, path)


def load_region_features(path, image_id=None):
    """Regions of one image from a ``.npz`` or a BUTD ``.tsv``.

    Args:
        path (str): ``<image>.npz`` or a ``.tsv`` (many images per file).
        image_id (str, optional): Row to return from a TSV; required when
            the TSV holds more than one image. Defaults to None.

    Returns:
        dict: ``features`` (N, 2048) float32, ``boxes`` (N, 4) float32,
        ``image_w``, ``image_h``, ``num_boxes``, ``image_id``,
        ``locations`` (N, 5) (:func:`region_locations`), plus from a
        ``.npz`` every other array it holds (``cls_prob``,
        ``object_ids`` ...).

    Raises:
        FileNotFoundError: No such file.
        RegionFileError: Missing fields or image id.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'no region file {path}; run '
                                'tools/feature_extraction/extract_regions.py')
    if path.endswith('.tsv'):
        rows = iter_tsv_regions(path)
        out = None
        for i, row in enumerate(rows):
            if image_id is None and i > 0:
                raise RegionFileError(
                    f'{path} holds several images; pass image_id')
            if image_id is None or str(row['image_id']) == str(image_id):
                out = row
                if image_id is not None:
                    break
        if out is None:
            raise RegionFileError(f'{path} has no image {image_id!r}')
    else:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
        missing = {'features', 'boxes', 'image_w', 'image_h'} - set(out)
        if missing:
            raise RegionFileError(
                f'{path} lacks {sorted(missing)}; re-extract it with '
                'tools/feature_extraction/extract_regions.py')
        for key in ('image_w', 'image_h', 'num_boxes'):
            if key in out:
                out[key] = int(out[key])
        if 'image_id' in out:
            out['image_id'] = str(out['image_id'])
        out['num_boxes'] = len(out['boxes'])
    _check_shapes(path, out)
    out['locations'] = region_locations(out['boxes'], out['image_w'],
                                        out['image_h'])
    return out


def _check_shapes(path, out):
    """One line naming the file when the arrays cannot describe regions
    (a feature per box, (N, 4) boxes, a positive image size, finite)."""
    feats, boxes = np.asarray(out['features']), np.asarray(out['boxes'])
    problem = None
    if feats.ndim != 2 or boxes.ndim != 2 or boxes.shape[1:] != (4, ):
        problem = (f'features {feats.shape} / boxes {boxes.shape} are not '
                   '(N, D) / (N, 4)')
    elif len(feats) != len(boxes):
        problem = f'{len(feats)} feature rows for {len(boxes)} boxes'
    elif 'cls_prob' in out and len(out['cls_prob']) != len(boxes):
        problem = (f'{len(out["cls_prob"])} cls_prob rows for '
                   f'{len(boxes)} boxes')
    elif not (float(out['image_w']) > 0 and float(out['image_h']) > 0):
        problem = f'image size {out["image_w"]}x{out["image_h"]}'
    elif not (np.isfinite(feats).all() and np.isfinite(boxes).all()):
        problem = 'non-finite features or boxes'
    if problem:
        raise RegionFileError(f'{path}: {problem}; re-extract it with '
                              'tools/feature_extraction/extract_regions.py')
