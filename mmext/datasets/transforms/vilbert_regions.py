# Copyright (c) mmext contributors. All rights reserved.
"""Detector regions of a ViLBERT sample: loading (``.npz`` files or BUTD
TSVs) and masked-region modelling.

Part of the ViLBERT pipeline of :mod:`mmext.datasets.transforms.vilbert`
(which re-exports both transforms); kept apart so each module stays short.
"""
import os.path as osp
from typing import List, Optional, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform

from mmext.registry import TRANSFORMS

__all__ = ['LoadRegionFeatures', 'MaskRegions']


@TRANSFORMS.register_module()
class LoadRegionFeatures(BaseTransform):
    """Detector regions of a sample from per-image ``.npz`` files or the
    released BUTD TSVs.

    Gives ``region_feats`` (N, F), ``region_locs`` (N, 5): x1/w, y1/h,
    x2/w, y2/h, area fraction, and ``region_targets`` (N, C) when the file
    holds ``cls_prob`` (the detector's class distribution, the
    masked-region target). At most ``max_regions`` (ViLBERT: 36) are kept.

    Sources (exactly one):

    - ``feature_dir``: ``<feature_dir>/<image id>.npz`` as written by
      ``tools/feature_extraction/extract_regions.py`` or
      ``regions_tsv_to_npz.py`` (read with ``allow_pickle=False``).
    - ``feature_file``: BUTD TSV(s) as ``tools/generate_tsv.py`` writes
      them (``image_id, image_w, image_h, num_boxes, boxes, features``;
      no ``cls_prob``), a path, glob or list. Rows are found through a
      sidecar index (:class:`~mmext.datasets.region_tsv.RegionTSV`); every
      process opens its own file handles.

    The image id of a sample: ``results[id_key]`` when ``id_key`` is set
    and the sample has it (COCO's int ``image_id``); else, when an
    ``image_ids.csv`` from ``extract_regions.py`` lies in ``feature_dir``
    (or beside the first TSV), the id it lists for ``img_path`` (same
    absolute path, else same file name if only one image has it), so two
    images with one stem find their own regions; else the file stem of
    ``img_path``. mmpretrain / the first version here had only the stem
    of ``feature_dir/<stem>.npz``.

    Args:
        feature_dir (str, optional): Folder of ``.npz`` files.
        max_regions (int): Defaults to 36.
        feature_file (str | list[str], optional): TSV path(s) or glob(s).
        id_key (str, optional): Sample key holding the image id.
        require_cls_prob (bool): Refuse features without ``cls_prob``
            (set by configs whose masked-region loss needs it): a TSV at
            build time, an ``.npz`` at the first sample. Defaults to False.
        max_line_bytes (int, optional): Longest TSV row read (8 MiB).
    """

    def __init__(self,
                 feature_dir: Optional[str] = None,
                 max_regions: int = 36,
                 feature_file: Union[str, List[str], None] = None,
                 id_key: Optional[str] = None,
                 require_cls_prob: bool = False,
                 max_line_bytes: Optional[int] = None) -> None:
        if (feature_dir is None) == (feature_file is None):
            raise ValueError(
                'LoadRegionFeatures: set exactly one of feature_dir (a '
                'folder of <image id>.npz) and feature_file (BUTD TSV path, '
                f'glob or list); got feature_dir={feature_dir!r}, '
                f'feature_file={feature_file!r}')
        self.feature_dir, self.max_regions = feature_dir, max_regions
        self.feature_file, self.id_key = feature_file, id_key
        self.require_cls_prob = require_cls_prob
        self._tsv, self._ids = None, False
        if feature_file is not None:
            from mmext.datasets.region_tsv import MAX_LINE_BYTES, RegionTSV
            self._tsv = RegionTSV(feature_file, max_line_bytes
                                  or MAX_LINE_BYTES)
            if require_cls_prob:
                raise ValueError(_no_cls_prob(feature_file, 'BUTD TSVs'))

    def _id_map(self):
        if self._ids is False:
            from mmext.datasets.region_features import read_image_ids
            folder = self.feature_dir or osp.dirname(self._tsv.files[0])
            path = osp.join(folder, 'image_ids.csv')
            self._ids = read_image_ids(path) if osp.isfile(path) else None
        return self._ids

    def image_id(self, results: dict) -> Tuple[str, str]:
        """The sample's region id and the rule that gave it."""
        if self.id_key and results.get(self.id_key) is not None:
            return str(results[self.id_key]), f'results[{self.id_key!r}]'
        img_path = results['img_path']
        ids = self._id_map()
        if ids is not None:
            by_path, by_name = ids
            found = by_path.get(osp.abspath(img_path))
            if found is None:
                found = by_name.get(osp.basename(img_path))
            if found is not None:
                return found, 'image_ids.csv'
        return osp.splitext(osp.basename(img_path))[0], 'file stem'

    def _regions(self, results):
        from mmext.datasets.region_features import (load_region_features,
                                                    npz_id_problem)
        image_id, rule = self.image_id(results)
        source = self.feature_dir or self._tsv
        if self._tsv is not None:
            regions = self._tsv.get(image_id)
        else:
            path = osp.join(self.feature_dir, image_id + '.npz')
            problem = npz_id_problem(image_id)
            if problem:
                raise ValueError(
                    f'LoadRegionFeatures: image id {image_id!r} (from '
                    f'{rule}) {problem}; set id_key to a plain id')
            regions = load_region_features(path) if osp.isfile(path) else None
            source = path
        if regions is None:
            raise FileNotFoundError(
                f'LoadRegionFeatures: no regions for image id {image_id!r} '
                f'(from {rule}, img_path {results.get("img_path")}) in '
                f'{source}; extract features first (tools/'
                'feature_extraction/extract_regions.py) or set id_key')
        if self.require_cls_prob and 'cls_prob' not in regions:
            raise ValueError(_no_cls_prob(source, 'these features'))
        return regions

    def transform(self, results: dict) -> dict:
        regions = self._regions(results)
        n = self.max_regions
        results.update(
            region_feats=regions['features'][:n].astype(np.float32),
            region_locs=regions['locations'][:n])
        if 'cls_prob' in regions:
            results['region_targets'] = regions['cls_prob'][:n].astype(
                np.float32)
        return results


def _no_cls_prob(source, what):
    return (f'LoadRegionFeatures: {source} has no cls_prob ({what} carry '
            'only boxes and features) but require_cls_prob=True (the '
            'masked-region KL loss): set model.losses.mrm=0 and '
            'require_cls_prob=False to train MLM + ITM only, or extract '
            '.npz with cls_prob (tools/feature_extraction/'
            'extract_regions.py --format npz) and set feature_dir')


@TRANSFORMS.register_module()
class MaskRegions(BaseTransform):
    """Masked-region modelling: each region chosen with ``prob`` (0.15);
    ``zero_prob`` (0.9) of the chosen get a zero feature, the rest stay.
    Gives ``mrm_mask`` (N,) bool (ViLBERT's ``image_label == 1``)."""

    def __init__(self, prob: float = 0.15, zero_prob: float = 0.9) -> None:
        self.prob, self.zero_prob = prob, zero_prob

    def transform(self, results: dict) -> dict:
        n = len(results['region_feats'])
        chosen = np.random.rand(n) < self.prob
        zero = chosen & (np.random.rand(n) < self.zero_prob)
        results['region_feats'] = results['region_feats'].copy()
        results['region_feats'][zero] = 0
        results['mrm_mask'] = chosen
        return results
