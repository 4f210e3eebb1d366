# Copyright (c) mmext contributors. All rights reserved.
"""Region-feature extraction with :class:`BUTDFasterRCNN` over a folder.

What ``tools/generate_tsv.py`` does, plus what it lacked for large runs:
resumable (finished images are skipped: their ``.npz`` exists or their TSV
row is complete), unreadable images listed with the reason instead of
stopping the run, and sharding over processes / machines from torchrun's
``RANK`` / ``WORLD_SIZE`` (each rank takes every ``WORLD_SIZE``-th image
of the sorted list and writes its own TSV and failure list; no process
group is needed).

Outputs are named by image id, unique per input (``generate_tsv.py`` and
the first version here used the file stem, so ``same.jpg`` and
``same.png`` wrote one ``same.npz`` and two TSV rows ``same``): the id is
the stem unless another input's stem is equal ignoring case (a
case-insensitive output folder would merge them), then the file name
with its extension, then that name plus ``~`` and 8 hex digits of its
SHA-1 (:func:`assign_image_ids`); ``image_ids.csv`` maps every id to its
image. TSV ids are :func:`~mmext.dedup.textio.escape_path`-ed (and ``"``
written ``\\x22``), so a name with a tab, newline or quote keeps the TSV
parseable (:func:`~mmext.dedup.textio.unescape_path` gives the id back);
on resume a damaged TSV line is moved to ``regions_rank<r>.tsv.damaged``
with its line number and that image is extracted again.
"""
import csv
import hashlib
import os
import os.path as osp
import re
import unicodedata
import warnings
from collections import Counter

import numpy as np
import torch

from mmext.datasets.region_features import TSV_FIELDS, save_region_npz, tsv_row
from mmext.dedup.textio import atomic_write, escape_path, unescape_path
from mmext.utils.fileio import open_regular_file
from .select_regions import select_regions

__all__ = [
    'IMAGE_EXTENSIONS', 'list_images', 'regions_record', 'extract_regions',
    'shard_from_env', 'init_butd_detector', 'assign_image_ids', 'tsv_image_id'
]

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')

#: generate_tsv.py: per-class NMS 0.3, max score >= 0.2, 10..100 boxes
DEFAULT_SELECT = dict(
    nms_thresh=0.3, conf_thresh=0.2, min_boxes=10, max_boxes=100)


def init_butd_detector(config, checkpoint=None, device='cpu', fuse=True):
    """Build the config's ``BUTDFasterRCNN`` and load ``checkpoint``.

    Args:
        fuse (bool): Fold BatchNorm + Scale into the convs and run
            channels-last (:func:`.fuse.fuse_for_inference`: the same
            regions up to float rounding, faster). Defaults to True.

    Returns:
        tuple[BUTDFasterRCNN, Config]: The model in eval mode and the
        config (its ``extract_cfg`` holds the region selection).
    """
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint

    from mmext.registry import MODELS
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    with DefaultScope.overwrite_default_scope('mmext'):
        model = MODELS.build(cfg.model)
    if checkpoint is not None:  # mmext routes this to its safe loader
        try:
            load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
        except RuntimeError as e:  # missing / unexpected / shape mismatch
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            first = lines[1] if len(lines) > 1 else str(e)  # 1st mismatch
            raise ValueError(
                f'{checkpoint} does not fit the model of {config} ({first});'
                ' convert the caffemodel with this config (tools/'
                'model_converters/butd_caffe_to_mmext.py --config)') from None
    model = model.to(device).eval()
    if fuse:
        from .fuse import fuse_for_inference
        model = fuse_for_inference(model, inplace=True, channels_last=True)
    return model, cfg


def list_images(image_dir):
    """Sorted image files directly in ``image_dir``."""
    if not osp.isdir(image_dir):
        raise FileNotFoundError(f'--images {image_dir} is not a directory')
    return sorted(
        osp.join(image_dir, f) for f in os.listdir(image_dir)
        if f.lower().endswith(IMAGE_EXTENSIONS))


def shard_from_env(rank=None, world_size=None):
    """``(rank, world_size)`` from the arguments or torchrun's env."""
    rank = int(os.environ.get('RANK', 0)) if rank is None else rank
    world = int(os.environ.get('WORLD_SIZE', 1)) \
        if world_size is None else world_size
    if not 0 <= rank < world:
        raise ValueError(f'rank {rank} is outside world size {world}')
    return rank, world


def regions_record(out, image_id, select_cfg=None, save_cls_prob=True):
    """Select regions from :meth:`BUTDFasterRCNN.predict_image` output and
    return the arrays written per image (see
    :mod:`mmext.datasets.region_features`)."""
    cfg = dict(DEFAULT_SELECT, **(select_cfg or {}))
    keep, max_conf = select_regions(out['rois'], out['cls_prob'], **cfg)
    cls_prob = out['cls_prob'][keep]
    attr_prob = out['attr_prob'][keep]
    obj_score, obj = cls_prob[:, 1:].max(dim=1)
    attr_score, attr = attr_prob[:, 1:].max(dim=1)
    h, w = out['image_hw']
    record = dict(
        image_id=str(image_id),
        image_w=int(w),
        image_h=int(h),
        num_boxes=len(keep),
        boxes=out['rois'][keep].numpy(),
        features=out['features'][keep].numpy(),
        object_ids=(obj + 1).numpy(),
        object_scores=obj_score.numpy(),
        attr_ids=(attr + 1).numpy(),
        attr_scores=attr_score.numpy(),
        max_conf=max_conf[keep].numpy())
    if save_cls_prob:
        record['cls_prob'] = cls_prob.numpy()
    return record


#: Longest id in UTF-8 bytes: ``<id>.npz.tmp<pid>.npz`` must fit a
#: 255-byte file name.
MAX_ID_BYTES = 200


def _fold(name):
    """What a case-insensitive (and Unicode-normalising) file system
    compares."""
    return unicodedata.normalize('NFC', name).casefold()


def _digest(text):
    return hashlib.sha1(os.fsencode(text)).hexdigest()[:8]


def _fit(image_id, source):
    """``image_id``, or its head + ``~`` + a digest when too long."""
    raw = os.fsencode(image_id)
    if len(raw) <= MAX_ID_BYTES:
        return image_id
    head = raw[:MAX_ID_BYTES - 9].decode('utf-8', 'ignore')
    return f'{os.fsdecode(head.encode())}~{_digest(source)}'


def assign_image_ids(images):
    """A unique output id for every image, the same on every rank.

    Per image the first candidate that no other image shares (compared
    ignoring case and Unicode normalisation) is taken: the file stem, the
    file name, the file name + ``~`` + 8 hex digits of SHA-1 of the name,
    then of the whole path. Ids depend only on the set of names, not on
    their order.

    Args:
        images (Sequence[str]): Image paths.

    Returns:
        list[str]: Ids in input order.

    Raises:
        ValueError: A path is listed twice.

    Example:
        >>> assign_image_ids(['d/same.jpg', 'd/same.png', 'd/x.jpg'])
        ['same.jpg', 'same.png', 'x']
    """
    images = [os.fspath(p) for p in images]
    twice = [p for p, n in Counter(images).items() if n > 1]
    if twice:
        raise ValueError(f'image {escape_path(twice[0])} is listed twice; '
                         'pass each image once')
    names = [osp.basename(p) for p in images]
    levels = (
        [osp.splitext(n)[0] or n for n in names],
        names,
        [f'{n}~{_digest(n)}' for n in names],
        [f'{n}~{_digest(p)}' for n, p in zip(names, images)],
    )
    ids, taken, pending = [None] * len(images), set(), range(len(images))
    for level in levels:
        cands = {i: _fit(level[i], images[i]) for i in pending}
        counts = Counter(_fold(c) for c in cands.values())
        for i, cand in cands.items():
            if counts[_fold(cand)] == 1 and _fold(cand) not in taken:
                ids[i] = cand
        taken.update(_fold(ids[i]) for i in cands if ids[i] is not None)
        pending = [i for i in pending if ids[i] is None]
    if pending:  # a SHA-1 prefix clash of two paths: practically never
        raise ValueError(f'no unique id for {escape_path(images[pending[0]])}')
    return ids


def tsv_image_id(image_id):
    """The id as written in the TSV: :func:`escape_path` (tabs, newlines,
    backslashes, undecodable bytes) and ``"`` as ``\\x22`` (a field
    starting with a quote is read as quoted by the csv module)."""
    return escape_path(image_id).replace('"', '\\x22')


_B64 = re.compile(r'[A-Za-z0-9+/]*={0,2}')


def _tsv_line_problem(line):
    """Why a TSV line is not a row this module wrote, or None."""
    try:
        text = line.decode('utf-8')
    except UnicodeDecodeError as e:
        return f'not UTF-8 (byte {e.start})'
    fields = text.rstrip('\r\n').split('\t')
    if len(fields) != len(TSV_FIELDS):
        return f'{len(fields)} tab-separated fields, not {len(TSV_FIELDS)}'
    image_id, w, h, n, boxes, feats = fields
    if not image_id or image_id.startswith('"'):
        return 'empty or quoted image id'
    try:
        unescape_path(image_id)
        w, h, n = int(w), int(h), int(n)
    except ValueError as e:
        return f'bad image id or size ({e})'
    if min(w, h) <= 0 or n < 0:
        return f'image size {w}x{h} with {n} boxes'
    if len(boxes) != 4 * -(-n * 16 // 3) or len(feats) % 4 or not (
            _B64.fullmatch(boxes) and _B64.fullmatch(feats)):
        return f'boxes / features are not base64 of {n} regions'
    return None


def _done_tsv_ids(path):
    """TSV ids (as written) with a complete row.

    A torn last line (a killed run) is cut off; any other damaged line is
    moved to ``<path>.damaged`` (with its line number) so the TSV stays
    readable, and its image counts as not done.

    Returns:
        tuple[set[str], list[tuple[int, str]]]: Done ids and ``(line,
        reason)`` of every damaged line moved.
    """
    if not osp.isfile(path):
        return set(), []
    with open(path, 'rb') as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        end = size
        while end > 0:  # find the end of the last complete line
            f.seek(max(0, end - 65536))
            chunk = f.read(end - max(0, end - 65536))
            cut = chunk.rfind(b'\n')
            if cut >= 0:
                end = end - len(chunk) + cut + 1
                break
            end = max(0, end - 65536)
    if end < size:  # interrupted mid-row: drop the partial row
        with open(path, 'r+b') as f:
            f.truncate(end)
    done, damaged = set(), []
    with open(path, 'rb') as f:
        for number, line in enumerate(f, 1):
            problem = _tsv_line_problem(line)
            if problem is None:
                done.add(line.split(b'\t', 1)[0].decode('utf-8'))
            else:
                damaged.append((number, problem))
    if damaged:
        _move_damaged_lines(path, damaged)
    return done, damaged


def _move_damaged_lines(path, damaged):
    """Rewrite ``path`` without the ``damaged`` lines; append them to
    ``<path>.damaged`` as ``# line <n>: <reason>`` then the raw line."""
    bad = dict(damaged)
    with open(path, 'rb') as src, open(path + '.damaged', 'ab') as junk, \
            atomic_write(path, 'wb') as dst:
        for number, line in enumerate(src, 1):
            if number in bad:
                junk.write(f'# line {number}: {bad[number]}\n'.encode())
                junk.write(line if line.endswith(b'\n') else line + b'\n')
            else:
                dst.write(line)


def _read_image(path):
    """BGR array of an image file; a FIFO or directory is refused without
    blocking, and non-UTF-8 names work (the bytes are decoded, not the
    path)."""
    import cv2
    with open_regular_file(path, 'image') as f:
        data = f.read()
    if not data:
        raise ValueError('empty file')
    im = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if im is None:
        raise ValueError(f'OpenCV cannot decode it ({len(data)} bytes)')
    return im


def _warn_few_regions(path, n, min_boxes):
    """generate_tsv.py pads nothing: an image with fewer proposals than
    ``min_boxes`` (small images, few RPN boxes after NMS) silently got
    fewer regions."""
    warnings.warn(
        f'{escape_path(path)}: {n} regions, fewer than min_boxes='
        f'{min_boxes} (only {n} proposals survived); its file holds {n} '
        'regions: readers must not assume a fixed count (ViLBERT pads), or '
        'upscale small images before extraction',
        stacklevel=3)


def _write_ids(path, images, ids):
    with atomic_write(path, newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(['image_id', 'image_path'])
        for image, image_id in zip(images, ids):
            writer.writerow([escape_path(image_id), escape_path(image)])


def extract_regions(model,
                    images,
                    out_dir,
                    formats=('npz', ),
                    select_cfg=None,
                    rank=None,
                    world_size=None,
                    save_cls_prob=True,
                    progress=True,
                    read_image=None):
    """Extract and write the regions of ``images`` (this rank's share).

    Args:
        model (BUTDFasterRCNN): In eval mode.
        images (list[str]): Image paths (all ranks pass the same list).
        out_dir (str): ``<image id>.npz`` per image and/or
            ``regions_rank<r>.tsv``; ``failed_rank<r>.txt`` lists images
            that could not be read (escaped path, tab, reason); rank 0
            writes ``image_ids.csv`` (escaped id, escaped path). Ids:
            :func:`assign_image_ids`.
        formats (Sequence[str]): ``'npz'`` and/or ``'tsv'``.
        select_cfg (dict, optional): :func:`select_regions` arguments.
        rank (int, optional): Defaults to ``$RANK`` or 0.
        world_size (int, optional): Defaults to ``$WORLD_SIZE`` or 1.
        save_cls_prob (bool): Store ``cls_prob`` in the ``.npz``.
        progress (bool): Show mmengine's progress bar. Defaults to True.
        read_image (callable, optional): path -> BGR array; defaults to
            decoding the file's bytes with ``cv2.imdecode``.

    Returns:
        dict: ``done``, ``skipped`` (already extracted), ``failed``
        (list of (path, reason)) for this rank, ``few_regions`` (list of
        (path, count) of images with fewer than ``min_boxes`` regions,
        each also warned about), and ``damaged`` (list of
        (line, reason) of TSV lines moved to ``regions_rank<r>.tsv.
        damaged``).
    """
    from mmengine.utils import ProgressBar
    unknown = set(formats) - {'npz', 'tsv'}
    if unknown or not formats:
        raise ValueError(f"formats must be 'npz' and/or 'tsv', got "
                         f'{list(formats)}')
    rank, world = shard_from_env(rank, world_size)
    os.makedirs(out_dir, exist_ok=True)
    read_image = read_image or _read_image
    images = list(images)
    ids = assign_image_ids(images)
    if rank == 0:
        _write_ids(osp.join(out_dir, 'image_ids.csv'), images, ids)
    mine = list(zip(images, ids))[rank::world]
    tsv_path = osp.join(out_dir, f'regions_rank{rank}.tsv')
    done_tsv, damaged = (
        _done_tsv_ids(tsv_path) if 'tsv' in formats else (set(), []))
    failed_path = osp.join(out_dir, f'failed_rank{rank}.txt')
    summary = dict(
        done=0, skipped=0, failed=[], damaged=damaged, few_regions=[])
    min_boxes = dict(DEFAULT_SELECT, **(select_cfg or {}))['min_boxes']
    bar = ProgressBar(len(mine)) if progress and mine else None
    tsv = open(
        tsv_path, 'a', encoding='utf-8',
        newline='') if 'tsv' in formats else None
    try:
        for path, image_id in mine:
            npz_path = osp.join(out_dir, image_id + '.npz')
            tsv_id = tsv_image_id(image_id)
            todo_npz = 'npz' in formats and not osp.isfile(npz_path)
            todo_tsv = 'tsv' in formats and tsv_id not in done_tsv
            if not (todo_npz or todo_tsv):
                summary['skipped'] += 1
            else:
                try:
                    im = read_image(path)
                except (OSError, ValueError) as e:
                    summary['failed'].append((path, str(e)))
                else:
                    with torch.no_grad():
                        out = model.predict_image(im)
                    rec = regions_record(out, image_id, select_cfg,
                                         save_cls_prob)
                    if rec['num_boxes'] < min_boxes:
                        _warn_few_regions(path, rec['num_boxes'], min_boxes)
                        summary['few_regions'].append((path, rec['num_boxes']))
                    if todo_npz:
                        save_region_npz(npz_path, rec)
                    if todo_tsv:
                        row = dict(tsv_row(rec), image_id=tsv_id)
                        tsv.write('\t'.join(str(row[k])
                                            for k in TSV_FIELDS) + '\n')
                        tsv.flush()
                    summary['done'] += 1
            if bar is not None:
                bar.update()
    finally:
        if tsv is not None:
            tsv.close()
    with atomic_write(failed_path, encoding='utf-8', newline='\n') as f:
        for path, reason in summary['failed']:
            f.write(f'{escape_path(path)}\t{escape_path(reason)}\n')
    return summary
