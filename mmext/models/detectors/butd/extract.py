# Copyright (c) mmext contributors. All rights reserved.
"""Region-feature extraction with :class:`BUTDFasterRCNN` over a folder.

What ``tools/generate_tsv.py`` does, plus what it lacked for large runs:
resumable (finished images are skipped: their ``.npz`` exists or their TSV
row is complete), unreadable images listed with the reason instead of
stopping the run, and sharding over processes / machines from torchrun's
``RANK`` / ``WORLD_SIZE`` (each rank takes every ``WORLD_SIZE``-th image
of the sorted list and writes its own TSV and failure list; no process
group is needed).
"""
import os
import os.path as osp

import torch

from mmext.datasets.region_features import (TSV_FIELDS, iter_tsv_regions,
                                            save_region_npz, tsv_row)
from .select_regions import select_regions

__all__ = [
    'IMAGE_EXTENSIONS', 'list_images', 'regions_record', 'extract_regions',
    'shard_from_env', 'init_butd_detector'
]

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')

#: generate_tsv.py: per-class NMS 0.3, max score >= 0.2, 10..100 boxes
DEFAULT_SELECT = dict(
    nms_thresh=0.3, conf_thresh=0.2, min_boxes=10, max_boxes=100)


def init_butd_detector(config, checkpoint=None, device='cpu'):
    """Build the config's ``BUTDFasterRCNN`` and load ``checkpoint``.

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
    return model.to(device).eval(), cfg


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


def _done_tsv_ids(path):
    """Image ids with a complete row; a torn last line is cut off."""
    if not osp.isfile(path):
        return set()
    with open(path, 'rb') as f:
        data = f.read()
    end = data.rfind(b'\n') + 1
    if end < len(data):  # interrupted mid-row: drop the partial row
        with open(path, 'r+b') as f:
            f.truncate(end)
    return {row['image_id'] for row in iter_tsv_regions(path)}


def _read_image(path):
    import cv2
    im = cv2.imread(path, cv2.IMREAD_COLOR)
    if im is None:
        size = osp.getsize(path)
        raise ValueError('empty file' if size ==
                         0 else f'OpenCV cannot decode it ({size} bytes)')
    return im


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
        out_dir (str): ``<stem>.npz`` per image and/or
            ``regions_rank<r>.tsv``; ``failed_rank<r>.txt`` lists images
            that could not be read (path, tab, reason).
        formats (Sequence[str]): ``'npz'`` and/or ``'tsv'``.
        select_cfg (dict, optional): :func:`select_regions` arguments.
        rank (int, optional): Defaults to ``$RANK`` or 0.
        world_size (int, optional): Defaults to ``$WORLD_SIZE`` or 1.
        save_cls_prob (bool): Store ``cls_prob`` in the ``.npz``.
        progress (bool): Show mmengine's progress bar. Defaults to True.
        read_image (callable, optional): path -> BGR array; defaults to
            ``cv2.imread``.

    Returns:
        dict: ``done``, ``skipped`` (already extracted) and ``failed``
        (list of (path, reason)) for this rank.
    """
    from mmengine.utils import ProgressBar
    unknown = set(formats) - {'npz', 'tsv'}
    if unknown or not formats:
        raise ValueError(f"formats must be 'npz' and/or 'tsv', got "
                         f'{list(formats)}')
    rank, world = shard_from_env(rank, world_size)
    os.makedirs(out_dir, exist_ok=True)
    read_image = read_image or _read_image
    mine = list(images)[rank::world]
    tsv_path = osp.join(out_dir, f'regions_rank{rank}.tsv')
    done_tsv = _done_tsv_ids(tsv_path) if 'tsv' in formats else set()
    failed_path = osp.join(out_dir, f'failed_rank{rank}.txt')
    summary = dict(done=0, skipped=0, failed=[])
    bar = ProgressBar(len(mine)) if progress and mine else None
    tsv = open(tsv_path, 'a', newline='') if 'tsv' in formats else None
    try:
        for path in mine:
            stem = osp.splitext(osp.basename(path))[0]
            npz_path = osp.join(out_dir, stem + '.npz')
            todo_npz = 'npz' in formats and not osp.isfile(npz_path)
            todo_tsv = 'tsv' in formats and stem not in done_tsv
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
                    rec = regions_record(out, stem, select_cfg, save_cls_prob)
                    if todo_npz:
                        save_region_npz(npz_path, rec)
                    if todo_tsv:
                        row = tsv_row(rec)
                        tsv.write('\t'.join(str(row[k])
                                            for k in TSV_FIELDS) + '\n')
                        tsv.flush()
                    summary['done'] += 1
            if bar is not None:
                bar.update()
    finally:
        if tsv is not None:
            tsv.close()
    with open(failed_path, 'w') as f:
        for path, reason in summary['failed']:
            f.write(f'{path}\t{reason}\n')
    return summary
