# Copyright (c) mmext contributors. All rights reserved.
"""One image -> BUTD regions: boxes, object / attribute names and scores,
and a drawn PNG.

bottom-up-attention's ``demo.ipynb`` draws the boxes of one image with
matplotlib from the caffe net; :class:`BUTDInferencer` does the same with
:class:`BUTDFasterRCNN` and the region selection of the config's
``extract_cfg`` (exactly what ``tools/feature_extraction`` writes).
"""
import copy
import os
import os.path as osp

import numpy as np
import torch

from .base import MMExtInferencer

__all__ = ['BUTDInferencer', 'draw_regions']

#: attributes shown in a drawn label from this score (the demo's 0.1)
ATTR_THRESH = 0.1


def _read(image):
    if isinstance(image, np.ndarray):
        return image
    import cv2
    img = cv2.imread(image, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'BUTDInferencer: cannot read image {image} (not '
                         'an image file OpenCV decodes)')
    return img


def draw_regions(img_bgr, regions, attr_thresh=ATTR_THRESH):
    """The image with each region's box and ``"attribute object score"``
    (the attribute only from ``attr_thresh``), BGR uint8."""
    import cv2
    out = np.ascontiguousarray(img_bgr).copy()
    scale = max(out.shape[:2]) / 600
    for i, box in enumerate(regions['boxes']):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        colour = tuple(
            int(c) for c in np.random.RandomState(i).randint(64, 256, 3))
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, max(1, int(2 * scale)))
        label = regions['objects'][i]
        if regions['attribute_scores'][i] >= attr_thresh:
            label = f"{regions['attributes'][i]} {label}"
        label = f"{label} {regions['object_scores'][i]:.2f}"
        cv2.putText(out, label, (x1 + 2, max(y1 - 3, 10)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4 * max(scale, 1), colour, 1,
                    cv2.LINE_AA)
    return out


class BUTDInferencer(MMExtInferencer):
    """Detect the regions of images with a BUTD config.

    Each result holds ``image``, ``image_hw``, ``boxes`` (N x 4, x1 y1 x2 y2
    pixels, as the extracted region files), ``objects`` / ``object_scores``
    and ``attributes`` / ``attribute_scores`` (names from the checkpoint's
    ``meta.dataset_meta`` ``classes`` / ``attributes``, written by the
    caffe converter with ``--objects-vocab``; ``object_<id>`` /
    ``attribute_<id>`` without them) and, with ``out_dir``, ``drawn`` (the
    PNG path). Images are run one at a time (the caffe test code's
    batch of one), whatever ``batch_size``.

    Args:
        model (str | Config | BaseModel): Config or built model.
        pretrained (str, optional): Converted checkpoint. Defaults to None.
        device (str, optional): Defaults to None (CPU).
        cfg_options (dict, optional): Config overrides.
        select_cfg (dict, optional): Overrides of the config's
            ``extract_cfg`` region selection (``min_boxes``, ``max_boxes``,
            ``conf_thresh``, ``nms_thresh``). Defaults to None.
        fuse (bool): Fold BatchNorm + Scale into the convs and run
            channels-last (:func:`~mmext.models.detectors.butd.fuse.
            fuse_for_inference`; same regions up to float rounding, faster).
            A model passed in is copied first, not changed. Defaults to True.
        precision (str): ``'fp32'``, or ``'fp16'`` / ``'bf16'`` for the
            convolutions (:func:`~mmext.models.detectors.butd.fuse.
            convs_to_half`; needs ``fuse``). Defaults to 'fp32'.

    Example:
        >>> inferencer = BUTDInferencer(CONFIG, CKPT)  # doctest: +SKIP
        >>> res = inferencer('street.jpg', out_dir='vis')[0]  # doctest: +SKIP
        >>> res['objects'][:2], res['drawn']  # doctest: +SKIP
        (['car', 'building'], 'vis/street.png')
    """

    visualize_kwargs = {'out_dir', 'show'}

    def __init__(self,
                 model,
                 pretrained=None,
                 device=None,
                 cfg_options=None,
                 select_cfg=None,
                 fuse=True,
                 precision='fp32'):
        from mmengine.model import BaseModel

        from mmext.models.detectors.butd.fuse import (convs_to_half,
                                                      fuse_for_inference)
        if precision != 'fp32' and not fuse:
            raise ValueError(f'BUTDInferencer: precision={precision!r} needs '
                             'fuse=True')
        given = isinstance(model, BaseModel)
        super().__init__(model, pretrained, device, cfg_options)
        if fuse:
            fused = fuse_for_inference(
                self.model, inplace=not given, channels_last=True)
            if given and fused is self.model and precision != 'fp32':
                fused = copy.deepcopy(fused)  # was fused: do not change it
            self.model = convs_to_half(fused, precision)
        ext = dict(self.config.get('extract_cfg') or {})
        for key in ('formats', 'save_cls_prob'):
            ext.pop(key, None)
        self.select_cfg = dict(ext, **(select_cfg or {}))

    def _init_pipeline(self, cfg):
        return _read

    def preprocess(self, inputs, batch_size=1):
        for chunk in self._get_chunk_data(iter(inputs), batch_size):
            yield [(item, self.pipeline(item)) for item in chunk]

    @torch.no_grad()
    def forward(self, data):
        from ..butd_extraction import regions_record
        records = []
        for image, img in data:
            out = self.model.predict_image(img)
            stem = (
                osp.splitext(osp.basename(image))[0]
                if isinstance(image, str) else 'image')
            record = regions_record(out, stem, self.select_cfg, False)
            record['source'] = image  # the path or array given
            records.append(record)
        return records

    def _names(self, key, prefix, ids):
        names = self.dataset_meta.get(key)
        return [
            names[i]
            if names is not None and i < len(names) else f'{prefix}_{i}'
            for i in ids.tolist()
        ]

    def _regions(self, record):
        image = record['source']
        return dict(
            image=image if isinstance(image, str) else '<array>',
            image_hw=[record['image_h'], record['image_w']],
            boxes=record['boxes'].tolist(),
            objects=self._names('classes', 'object', record['object_ids']),
            object_scores=record['object_scores'].tolist(),
            attributes=self._names('attributes', 'attribute',
                                   record['attr_ids']),
            attribute_scores=record['attr_scores'].tolist())

    def visualize(self, inputs, preds, show=False, out_dir=None):
        if show:
            raise NotImplementedError('BUTDInferencer draws into out_dir; '
                                      'show=True is not supported')
        if out_dir is None:
            return None
        import cv2
        os.makedirs(out_dir, exist_ok=True)
        paths = []
        for i, record in enumerate(preds):
            image = record['source']
            stem = (
                osp.splitext(osp.basename(image))[0]
                if isinstance(image, str) else str(i))
            path = osp.join(out_dir, stem + '.png')
            drawn = draw_regions(_read(image), self._regions(record))
            if not cv2.imwrite(path, drawn):
                raise OSError(f'BUTDInferencer: cannot write {path}')
            paths.append(path)
        return paths

    def postprocess(self, preds, visualization, return_datasamples=False):
        if return_datasamples:
            raise ValueError('BUTDInferencer returns region dicts; '
                             'return_datasamples is not supported')
        results = []
        for i, record in enumerate(preds):
            res = self._regions(record)
            if visualization:
                res['drawn'] = visualization[i]
            results.append(res)
        return results
