# Copyright (c) mmext contributors. All rights reserved.
"""Transforms for multi-view report-generation samples (R2Gen).

mmpretrain's pipeline handles one image per sample; an IU X-ray study has two
views that R2Gen transforms independently (each view gets its own random crop
and flip). These three transforms load the views, run any mmpretrain / mmcv
transform list on each view, and pack ``(V, 3, H, W)`` inputs with a report
data sample.
"""
import mmcv
import mmengine.fileio as fileio
import numpy as np
import torch
from mmcv.transforms import BaseTransform, Compose
from mmpretrain.structures import DataSample

from mmext.registry import TRANSFORMS

__all__ = ['LoadMultiViewImages', 'ApplyToViews', 'PackReportInputs']


@TRANSFORMS.register_module()
class LoadMultiViewImages(BaseTransform):
    """Load every path in ``results['img_path']`` into ``results['img']``.

    Samples that arrive with their pixels already loaded are accepted too,
    as mmpretrain's inferencers pass them: ``img`` holding one array (a
    one-view study) or a list of arrays (one per view), in mmcv's BGR order
    (``mmcv.imread``), with or without ``img_path``. They are converted to
    ``channel_order`` (grayscale arrays get three equal channels). A single
    ``img_path`` string is read as a one-view study. (Upstream handles
    neither: the transform raised ``KeyError: 'img_path'`` under
    ``ImageCaptionInferencer``.)

    R2Gen (Chen et al., EMNLP 2020) opens each view with PIL and converts it
    to RGB; grayscale radiographs therefore become three equal channels. This
    transform does the same with mmcv's decoder (``channel_order='rgb'`` by
    default, so the data preprocessor needs no ``to_rgb``).

    Args:
        color_type (str): mmcv ``imfrombytes`` flag. Default 'color'.
        channel_order (str): 'rgb' or 'bgr'. Default 'rgb'.
        imdecode_backend (str): mmcv decoding backend. Default 'cv2'.
        backend_args (dict, optional): mmengine file backend arguments.

    Example:
        >>> t = LoadMultiViewImages()
        >>> r = t(dict(img_path=['a/0.png', 'a/1.png']))  # doctest: +SKIP
        >>> len(r['img']), r['img'][0].shape  # doctest: +SKIP
        (2, (64, 64, 3))
    """

    def __init__(self,
                 color_type='color',
                 channel_order='rgb',
                 imdecode_backend='cv2',
                 backend_args=None):
        self.color_type = color_type
        self.channel_order = channel_order
        self.imdecode_backend = imdecode_backend
        self.backend_args = backend_args

    def transform(self, results):
        if results.get('img') is not None:
            imgs = self._from_arrays(results['img'])
        else:
            imgs = self._from_files(results)
        results['img'] = imgs
        results['ori_shape'] = [img.shape[:2] for img in imgs]
        results['img_shape'] = [img.shape[:2] for img in imgs]
        return results

    def _from_arrays(self, img):
        views = [img] if isinstance(img, np.ndarray) else list(img)
        imgs = []
        for i, view in enumerate(views):
            view = np.asarray(view)
            if view.ndim == 2 or (view.ndim == 3 and view.shape[2] == 1):
                view = np.repeat(view.reshape(view.shape[:2] + (1, )), 3, 2)
            if view.ndim != 3 or view.shape[2] != 3:
                raise ValueError(
                    f'LoadMultiViewImages: view {i} is an array of shape '
                    f'{view.shape}; give H x W (gray) or H x W x 3 (BGR) '
                    'images')
            if self.channel_order == 'rgb':
                view = view[..., ::-1]
            imgs.append(np.ascontiguousarray(view))
        return imgs

    def _from_files(self, results):
        if 'img_path' not in results:
            raise KeyError('LoadMultiViewImages: the sample has neither '
                           f'img_path nor img (keys {sorted(results)}); '
                           'give the view files or arrays')
        paths = results['img_path']
        if isinstance(paths, str):
            paths = [paths]
        imgs = []
        for path in paths:
            img_bytes = fileio.get(path, backend_args=self.backend_args)
            img = mmcv.imfrombytes(
                img_bytes,
                flag=self.color_type,
                channel_order=self.channel_order,
                backend=self.imdecode_backend)
            if img is None:
                raise ValueError(f'LoadMultiViewImages: {path} is not a '
                                 'readable image')
            imgs.append(img)
        return imgs

    def __repr__(self):
        return (f'{type(self).__name__}(channel_order={self.channel_order!r}'
                f', color_type={self.color_type!r})')


@TRANSFORMS.register_module()
class ApplyToViews(BaseTransform):
    """Run a transform list on every view of ``results['img']`` separately.

    Each view goes through the list in its own results dict, so random
    transforms draw independently per view, as R2Gen's per-image torchvision
    ``transform`` calls do. mmpretrain has no multi-view wrapper (its
    ``MultiView`` makes several augmented copies of *one* image).

    Args:
        transforms (list[dict | callable]): mmpretrain / mmcv transforms,
            e.g. ``[dict(type='ResizeEdge', scale=256),
            dict(type='RandomCrop', crop_size=224)]``.

    Example:
        >>> t = ApplyToViews([dict(type='Resize', scale=(32, 32))])
        >>> r = t(dict(img=[np.zeros((64, 48, 3), np.uint8)] * 2))
        >>> [im.shape for im in r['img']]
        [(32, 32, 3), (32, 32, 3)]
    """

    def __init__(self, transforms):
        self.pipeline = Compose([
            TRANSFORMS.build(t) if isinstance(t, dict) else t
            for t in transforms
        ])

    def transform(self, results):
        imgs, shapes, flips = [], [], []
        for img in results['img']:
            view = dict(
                img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
            view = self.pipeline(view)
            if view is None:
                return None
            imgs.append(view['img'])
            shapes.append(view['img'].shape[:2])
            flips.append(view.get('flip', False))
        if len({s for s in shapes}) > 1:
            raise ValueError(f'ApplyToViews: views end with different sizes '
                             f'{shapes}; end the transform list with a fixed '
                             'size (e.g. RandomCrop 224 or Resize (224, 224))')
        results['img'] = imgs
        results['img_shape'] = shapes
        results['flip'] = flips
        return results

    def __repr__(self):
        return f'{type(self).__name__}({self.pipeline.transforms})'


@TRANSFORMS.register_module()
class PackReportInputs(BaseTransform):
    """Pack views and report into ``inputs`` and a ``DataSample``.

    Output ``inputs``: uint8 tensor ``(V, 3, H, W)``. ``data_samples``: an
    mmpretrain ``DataSample`` with data field ``gt_tokens`` (LongTensor of
    token ids, already truncated to ``max_seq_length``) and metainfo
    ``gt_report`` (full cleaned report), ``study_id``, ``img_path`` (list)
    plus the keys in ``meta_keys`` found in the results.

    Args:
        meta_keys (tuple[str]): Extra result keys copied into the metainfo.
            Default ('ori_shape', 'img_shape', 'flip').

    Example:
        >>> r = PackReportInputs()(dict(
        ...     img=[np.zeros((8, 8, 3), np.uint8)] * 2, gt_tokens=[0, 5, 0],
        ...     gt_report='lungs .', study_id='s1', img_path=['a', 'b']))
        >>> r['inputs'].shape, r['data_samples'].gt_tokens.tolist()
        (torch.Size([2, 3, 8, 8]), [0, 5, 0])
    """

    def __init__(self, meta_keys=('ori_shape', 'img_shape', 'flip')):
        self.meta_keys = tuple(meta_keys)

    def transform(self, results):
        views = []
        for img in results['img']:
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
            views.append(
                torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))))
        sample = DataSample()
        if 'gt_tokens' in results:
            sample.set_field(
                torch.as_tensor(results['gt_tokens'], dtype=torch.long),
                'gt_tokens',
                field_type='data')
        for key in ('gt_report', 'study_id', 'img_path') + self.meta_keys:
            if key in results:
                sample.set_field(results[key], key, field_type='metainfo')
        return dict(inputs=torch.stack(views), data_samples=sample)

    def __repr__(self):
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
