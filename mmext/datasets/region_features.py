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
import os
import os.path as osp
import zipfile

import numpy as np

__all__ = [
    'TSV_FIELDS', 'load_region_features', 'iter_tsv_regions',
    'region_locations', 'save_region_npz', 'tsv_row', 'RegionFileError',
    'finish_regions', 'tsv_to_npz'
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


def iter_tsv_regions(path, max_line_bytes=None):
    """Yield one dict per row of a BUTD TSV (fields as
    :func:`load_region_features`, ``image_id`` as written); rows are read
    with a bounded length (:mod:`mmext.datasets.region_tsv`)."""
    from mmext.utils.fileio import open_regular_file
    from .region_tsv import MAX_LINE_BYTES, iter_tsv_lines, parse_tsv_line
    with open_regular_file(path, 'region TSV') as f:
        for line_no, _, line in iter_tsv_lines(
                f, path, max_line_bytes or MAX_LINE_BYTES):
            yield parse_tsv_line(line, path, line_no)


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
    if not path.endswith('.npz'):  # BUTD TSVs: .tsv, .tsv.0, ...
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
        try:
            with np.load(path, allow_pickle=False) as z:
                out = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise RegionFileError(
                f'{path} is not a readable .npz ({str(e).splitlines()[0]});'
                ' re-extract it with tools/feature_extraction/'
                'extract_regions.py') from None
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
    return finish_regions(path, out) if path.endswith('.npz') else out


def finish_regions(where, out):
    """Check the arrays of a region record (:func:`_check_shapes`, naming
    ``where``) and add ``locations``; returns ``out``."""
    _check_shapes(where, out)
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


#: Longest npz id in UTF-8 bytes (``<id>.npz.tmp<pid>.npz`` fits 255).
MAX_NPZ_ID_BYTES = 200


def npz_id_problem(image_id):
    """Why ``image_id`` cannot name ``<out>/<id>.npz``, or None."""
    if image_id in ('', '.', '..'):
        return 'empty or a dot name'
    if '/' in image_id or '\0' in image_id or (os.sep != '/'
                                               and os.sep in image_id):
        return 'holds a path separator or NUL'
    if len(os.fsencode(image_id)) > MAX_NPZ_ID_BYTES:
        return f'longer than {MAX_NPZ_ID_BYTES} UTF-8 bytes'
    return None


def _raw_id(field):
    """A TSV id as written -> the image id (mmext's extractor escapes odd
    characters; released files hold plain ids)."""
    if '\\' not in field:
        return field
    from mmext.dedup.textio import unescape_path
    try:
        return unescape_path(field)
    except ValueError:
        return field


def tsv_to_npz(tsv_files, out_dir, max_line_bytes=None, progress=None):
    """Convert BUTD TSV rows to ``<out_dir>/<image id>.npz`` files.

    Resumable (an existing ``.npz`` is skipped; each is written
    atomically), lines read with a bounded length. A row is refused, and
    listed in ``<out_dir>/refused_rows.tsv`` (TSV file, line, escaped id,
    reason), when it is damaged or too long, when its id cannot be a file
    name (:func:`npz_id_problem`), repeats an earlier row, or equals
    another id ignoring case (a case-insensitive disk would merge them).

    Args:
        tsv_files (str | list[str]): TSVs, globs or a list of them.
        out_dir (str): Output folder.
        max_line_bytes (int, optional): Defaults to
            :data:`mmext.datasets.region_tsv.MAX_LINE_BYTES`.
        progress (callable, optional): Called as ``progress(bytes_done,
            bytes_total)`` after every row.

    Returns:
        dict: ``converted``, ``skipped`` (counts), ``refused`` (list of
        ``(tsv, line, id, reason)``).
    """
    from mmext.dedup.textio import atomic_write, escape_path
    from mmext.utils.fileio import open_regular_file
    from .region_tsv import (MAX_LINE_BYTES, _first_field, expand_tsv_files,
                             iter_tsv_lines, parse_tsv_line)
    files = expand_tsv_files(tsv_files)
    max_line_bytes = max_line_bytes or MAX_LINE_BYTES
    os.makedirs(out_dir, exist_ok=True)
    existing = {
        n[:-4].casefold(): n[:-4]
        for n in os.listdir(out_dir) if n.endswith('.npz')
    }
    total = sum(os.path.getsize(f) for f in files)
    summary, seen, done_bytes = dict(converted=0, skipped=0, refused=[]), {}, 0
    for path in files:
        refuse = summary['refused'].append

        def on_long(line_no, err, path=path):
            refuse((path, line_no, '', str(err).split(': ', 1)[1]))

        with open_regular_file(path, 'region TSV') as f:
            for line_no, _, line in iter_tsv_lines(f, path, max_line_bytes,
                                                   on_long):
                done_bytes += len(line)
                image_id = _raw_id(_first_field(line))
                problem = npz_id_problem(image_id)
                if problem is None and image_id in seen:
                    problem = f'repeats the id of {seen[image_id]}'
                other = existing.get(image_id.casefold())
                if problem is None and other not in (None, image_id):
                    problem = (f'equals {escape_path(other)}.npz ignoring '
                               'case')
                if problem is None:
                    seen[image_id] = f'{path} line {line_no}'
                    out = osp.join(out_dir, image_id + '.npz')
                    if osp.exists(out):
                        summary['skipped'] += 1
                    else:
                        try:
                            rec = parse_tsv_line(line, path, line_no)
                        except RegionFileError as e:
                            problem = str(e).split(': ', 1)[1]
                        else:
                            rec.pop('locations')
                            save_region_npz(out, dict(rec, image_id=image_id))
                            existing[image_id.casefold()] = image_id
                            summary['converted'] += 1
                if problem is not None:
                    refuse((path, line_no, image_id, problem))
                if progress is not None:
                    progress(done_bytes, total)
    with atomic_write(
            osp.join(out_dir, 'refused_rows.tsv'), encoding='utf-8',
            newline='\n') as f:
        f.write('tsv\tline\timage_id\treason\n')
        for path, line_no, image_id, reason in summary['refused']:
            f.write(f'{escape_path(path)}\t{line_no}\t'
                    f'{escape_path(image_id)}\t{escape_path(reason)}\n')
    return summary


def read_image_ids(path):
    """``image_ids.csv`` of :func:`~mmext.apis.butd_extraction.
    extract_regions` -> ``(by_path, by_name)``: absolute image path -> id
    and file name -> id (None when two images share the name)."""
    import csv

    from mmext.dedup.textio import unescape_path
    from mmext.utils.fileio import read_text_file
    text = read_text_file(path, 'image id map', max_bytes=1 << 30)
    by_path, by_name = {}, {}
    rows = csv.reader(text.splitlines())
    header = next(rows, None)
    if header != ['image_id', 'image_path']:
        raise RegionFileError(
            f'{path}: first row is {header}, not image_id,image_path; it is '
            'written by tools/feature_extraction/extract_regions.py')
    for line_no, row in enumerate(rows, 2):
        try:
            image_id, image = map(unescape_path, row)
        except ValueError as e:
            raise RegionFileError(
                f'{path}: line {line_no} is not an escaped id and path '
                f'({str(e)[:80]})') from None
        by_path[osp.abspath(image)] = image_id
        name = osp.basename(image)
        by_name[name] = None if name in by_name else image_id
    return by_path, by_name
