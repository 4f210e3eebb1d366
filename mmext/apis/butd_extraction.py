# Copyright (c) mmext contributors. All rights reserved.
"""Region-feature extraction with :class:`BUTDFasterRCNN` over a folder.

What ``tools/generate_tsv.py`` does, plus what it lacked for large runs:
resumable (finished images are skipped: their ``.npz`` exists or their TSV
row is complete), unreadable images listed with the reason instead of
stopping the run, sharding over processes / machines from torchrun's
``RANK`` / ``WORLD_SIZE`` (each rank takes every ``WORLD_SIZE``-th image
of the sorted list and writes its own TSV and failure list; no process
group is needed), decoding in data-loader workers while the network runs
(:class:`DecodedImages`, ``workers``) and convolutions in fp16 / bf16
(``precision``, :func:`~mmext.models.detectors.butd.fuse.convs_to_half`).

Outputs are named by a unique image id (:func:`~.region_files.
assign_image_ids`; ``image_ids.csv`` maps every id to its image). TSV ids
are :func:`~mmext.datasets.region_tsv.tsv_image_id`-ed, so a name with a
tab, newline or quote keeps the TSV parseable. Moved here from
``mmext.models.detectors.butd.extract`` (application code, issue 23).
"""
import os
import os.path as osp
import warnings

import torch

from mmext.datasets.region_features import TSV_FIELDS, save_region_npz, tsv_row
from mmext.datasets.region_tsv import tsv_image_id
from mmext.dedup.textio import escape_path
from mmext.models.detectors.butd.select_regions import select_regions
from .butd_decode import DecodedImages, SharedDecodeBudget, decoded_inputs
from .region_files import (assign_image_ids, done_tsv_ids, write_failed,
                           write_image_ids)

__all__ = [
    'IMAGE_EXTENSIONS', 'DEFAULT_SELECT', 'list_images', 'regions_record',
    'extract_regions', 'shard_from_env', 'init_butd_detector'
]

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')

#: generate_tsv.py: per-class NMS 0.3, max score >= 0.2, 10..100 boxes
DEFAULT_SELECT = dict(
    nms_thresh=0.3, conf_thresh=0.2, min_boxes=10, max_boxes=100)


def init_butd_detector(config,
                       checkpoint=None,
                       device='cpu',
                       fuse=True,
                       precision='fp32'):
    """Build the config's ``BUTDFasterRCNN`` and load ``checkpoint``.

    Args:
        config (str | Config): A ``configs/butd`` config.
        checkpoint (str, optional): Converted weights. Defaults to None.
        device (str): Defaults to 'cpu'.
        fuse (bool): Fold BatchNorm + Scale into the convs and run
            channels-last (:func:`~mmext.models.detectors.butd.fuse.
            fuse_for_inference`: the same regions up to float rounding,
            faster). Defaults to True.
        precision (str): ``'fp32'``, or ``'fp16'`` / ``'bf16'`` for the
            convolutions (:func:`~mmext.models.detectors.butd.fuse.
            convs_to_half`; needs ``fuse``). Defaults to 'fp32'.

    Returns:
        tuple[BUTDFasterRCNN, Config]: The model in eval mode and the
        config (its ``extract_cfg`` holds the region selection).
    """
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint

    from mmext.models.detectors.butd.fuse import (convs_to_half,
                                                  fuse_for_inference)
    from mmext.registry import MODELS
    if precision != 'fp32' and not fuse:
        raise ValueError(f'precision={precision!r} needs the fused model; '
                         'drop --no-fuse (fuse=False)')
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
        model = fuse_for_inference(model, inplace=True, channels_last=True)
        model = convs_to_half(model, precision)
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
    :mod:`mmext.datasets.region_features`; selected on the CPU)."""
    out = {k: v.cpu() if torch.is_tensor(v) else v for k, v in out.items()}
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


def extract_regions(model,
                    images,
                    out_dir,
                    formats=('npz', ),
                    select_cfg=None,
                    rank=None,
                    world_size=None,
                    save_cls_prob=True,
                    progress=True,
                    read_image=None,
                    workers=0,
                    decode_budget=1 << 30):
    """Extract and write the regions of ``images`` (this rank's share).

    Args:
        model (BUTDFasterRCNN): In eval mode.
        images (list[str]): Image paths (all ranks pass the same list).
        out_dir (str): ``<image id>.npz`` per image and/or
            ``regions_rank<r>.tsv``; ``failed_rank<r>.txt`` lists images
            that could not be read (escaped path, tab, reason); rank 0
            writes ``image_ids.csv`` (escaped id, escaped path). Ids:
            :func:`~.region_files.assign_image_ids`.
        formats (Sequence[str]): ``'npz'`` and/or ``'tsv'``.
        select_cfg (dict, optional): :func:`select_regions` arguments.
        rank (int, optional): Defaults to ``$RANK`` or 0.
        world_size (int, optional): Defaults to ``$WORLD_SIZE`` or 1.
        save_cls_prob (bool): Store ``cls_prob`` in the ``.npz``.
        progress (bool): Show mmengine's progress bar. Defaults to True.
        read_image (callable, optional): path -> BGR array; defaults to
            decoding the file's bytes with ``cv2.imdecode`` (only that
            default is held to ``decode_budget``).
        workers (int): Data-loader processes that read, decode and
            preprocess the next images while the network runs; 0 does it
            in this process between images. The outputs are the same.
            Defaults to 0.
        decode_budget (int): Bytes that the workers together may hold
            while decoding (:class:`~.butd_decode.SharedDecodeBudget`); an
            image needing more is listed as failed. Defaults to 1 GiB.

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
    if workers < 0 or decode_budget <= 0:
        raise ValueError(f'workers must be >= 0 and decode_budget > 0, got '
                         f'{workers} and {decode_budget}')
    rank, world = shard_from_env(rank, world_size)
    os.makedirs(out_dir, exist_ok=True)
    images = list(images)
    ids = assign_image_ids(images)
    if rank == 0:
        write_image_ids(osp.join(out_dir, 'image_ids.csv'), images, ids)
    mine = list(zip(images, ids))[rank::world]
    tsv_path = osp.join(out_dir, f'regions_rank{rank}.tsv')
    done_tsv, damaged = (
        done_tsv_ids(tsv_path) if 'tsv' in formats else (set(), []))
    summary = dict(
        done=0, skipped=0, failed=[], damaged=damaged, few_regions=[])
    min_boxes = dict(DEFAULT_SELECT, **(select_cfg or {}))['min_boxes']
    todo = {}  # index in mine -> (write npz, write tsv)
    for i, (path, image_id) in enumerate(mine):
        want_npz = 'npz' in formats and not osp.isfile(
            osp.join(out_dir, image_id + '.npz'))
        want_tsv = 'tsv' in formats and tsv_image_id(image_id) not in done_tsv
        if want_npz or want_tsv:
            todo[i] = (want_npz, want_tsv)
    budget = SharedDecodeBudget(decode_budget) if workers else None
    inputs = decoded_inputs(
        DecodedImages([mine[i][0] for i in todo], model.test_cfg, read_image,
                      budget), workers)
    bar = ProgressBar(len(mine)) if progress and mine else None
    tsv = open(
        tsv_path, 'a', encoding='utf-8',
        newline='') if 'tsv' in formats else None
    try:
        for i, (path, image_id) in enumerate(mine):
            if i not in todo:
                summary['skipped'] += 1
            else:
                todo_npz, todo_tsv = todo[i]
                item = next(inputs)
                if item['error'] is not None:
                    summary['failed'].append((path, item['error']))
                else:
                    out = model.predict_preprocessed(item['x'], item['scale'],
                                                     item['image_hw'])
                    rec = regions_record(out, image_id, select_cfg,
                                         save_cls_prob)
                    if rec['num_boxes'] < min_boxes:
                        _warn_few_regions(path, rec['num_boxes'], min_boxes)
                        summary['few_regions'].append((path, rec['num_boxes']))
                    if todo_npz:
                        save_region_npz(
                            osp.join(out_dir, image_id + '.npz'), rec)
                    if todo_tsv:
                        row = dict(
                            tsv_row(rec), image_id=tsv_image_id(image_id))
                        tsv.write('\t'.join(str(row[k])
                                            for k in TSV_FIELDS) + '\n')
                        tsv.flush()
                    summary['done'] += 1
            if bar is not None:
                bar.update()
    finally:
        if tsv is not None:
            tsv.close()
        inputs.close()
    write_failed(
        osp.join(out_dir, f'failed_rank{rank}.txt'), summary['failed'])
    return summary
