# Copyright (c) mmext contributors. All rights reserved.
"""Study images -> generated radiology report (R2Gen), batched, with the
CheXpert-14 labels of the report on request.

R2Gen has no inference script (its ``main_test.py`` evaluates a split), and
mmpretrain's ``ImageCaptionInferencer`` passes one image per sample, while
an IU X-ray study has two views. :class:`ReportInferencer` takes studies (a
folder, a list of view files or arrays) and checks their number of views
against the config.
"""
import os
import os.path as osp

import numpy as np
import torch
from mmengine.dataset import default_collate

from .base import MMExtInferencer, build_inference_model, load_config

__all__ = [
    'ReportInferencer', 'init_report_model', 'study_images', 'chexpert_labels'
]

_IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')


def study_images(study):
    """The views of a study: a folder gives its image files in name order
    (IU X-ray: ``0.png`` frontal, ``1.png`` lateral); a file or array is a
    one-view study; a list / tuple is returned as a list.

    Raises:
        FileNotFoundError: A path that does not exist.
        ValueError: A folder without image files.
    """
    if isinstance(study, np.ndarray):
        return [study]
    if isinstance(study, (list, tuple)):
        views = list(study)
        for view in views:
            if isinstance(view, str) and not osp.isfile(view):
                raise FileNotFoundError(f'study image {view} not found')
        return views
    study = os.fspath(study)
    if osp.isdir(study):
        views = sorted(
            osp.join(study, f) for f in os.listdir(study)
            if f.lower().endswith(_IMAGE_EXTENSIONS))
        if not views:
            raise ValueError(f'study folder {study} holds no image '
                             f'({", ".join(_IMAGE_EXTENSIONS)})')
        return views
    if not osp.isfile(study):
        raise FileNotFoundError(f'study image {study} not found')
    return [study]


def chexpert_labels(report):
    """CheXpert-14 labels of ``report``: ``{observation: 1 | 0 | -1}``
    (positive / negative / uncertain), observations not mentioned left
    out (mmext's pure-Python labeler)."""
    from mmext.evaluation.chexpert import CATEGORIES, label_report
    return {
        c: int(v)
        for c, v in zip(CATEGORIES, label_report(report)) if v == v
    }


def init_report_model(config, checkpoint=None, device=None, cfg_options=None):
    """An R2Gen model ready for mmext's or mmpretrain's inferencers.

    The tokenizers get the checkpoint's vocabulary
    (:func:`~mmext.apis.load_report_config`), the weights load strictly,
    and the model carries ``_config`` and an ``'Image Caption'``
    ``_metainfo``, so ``mmpretrain.apis.ImageCaptionInferencer(model)`` and
    ``mmpretrain.apis.inference_model(model, image)`` run it (one image
    per sample there: a one-view study).

    Args:
        config (str | Config): R2Gen config.
        checkpoint (str, optional): Trained checkpoint. Defaults to None
            (vocabulary from the config's annotation file, random weights).
        device (str, optional): Defaults to None (CPU).
        cfg_options (dict, optional): Config overrides.

    Returns:
        R2GenReportGenerator: In eval mode.
    """
    from modelindex.models.Model import Model
    from modelindex.models.Result import Result

    from mmext.apis.report_generation import load_report_config
    cfg = load_config(config, cfg_options)
    if checkpoint is not None:
        load_report_config(cfg, checkpoint)
    model = build_inference_model(cfg, checkpoint, device)
    name = osp.splitext(osp.basename(cfg.filename or 'r2gen'))[0]
    model._metainfo = Model(
        name=name,
        results=[
            Result(
                task='Image Caption',
                dataset=cfg.test_dataloader.dataset.get('type', ''),
                metrics={})
        ])
    return model


class ReportInferencer(MMExtInferencer):
    """Generate reports for studies with an R2Gen config.

    The vocabulary comes from the checkpoint (:func:`load_report_config`);
    decoding (beam / greedy, beam size, ...) is the config's
    ``model.decode`` unless ``decode=`` overrides keys of it. Each result
    holds ``images`` (paths, or ``<array>``), ``report`` and, with
    ``chexpert=True``, ``chexpert`` (see :func:`chexpert_labels`).

    Args:
        model (str | Config | BaseModel): Config or built model.
        pretrained (str, optional): Checkpoint (needed for its vocabulary
            unless ``model`` is built). Defaults to None.
        device (str, optional): Defaults to None (CPU).
        cfg_options (dict, optional): Config overrides.
        decode (dict, optional): Overrides of ``model.decode``, e.g.
            ``dict(strategy='greedy')``. Defaults to None.

    Example:
        >>> inferencer = ReportInferencer(CONFIG, CKPT)  # doctest: +SKIP
        >>> studies = ['study1/', ['f.png', 'l.png']]
        >>> inferencer(studies, batch_size=2,  # doctest: +SKIP
        ...            chexpert=True)[0]['report']
        'the heart is normal in size . the lungs are clear .'
    """

    postprocess_kwargs = {'chexpert'}

    def __init__(self,
                 model,
                 pretrained=None,
                 device=None,
                 cfg_options=None,
                 decode=None):
        super().__init__(model, pretrained, device, cfg_options)
        if decode:
            self.model.decode_cfg = dict(self.model.decode_cfg, **decode)

    def build_model(self, config, checkpoint, device, cfg_options):
        return init_report_model(config, checkpoint, device, cfg_options)

    def __call__(self,
                 inputs,
                 return_datasamples=False,
                 batch_size=1,
                 **kwargs):
        """Run on studies.

        Args:
            inputs: A study folder, or a list of studies (each a folder, an
                image path / array, or a list of the views).
            return_datasamples (bool): Defaults to False.
            batch_size (int): Studies per forward. Defaults to 1.
            chexpert (bool): Add the report's CheXpert-14 labels.

        Returns:
            list[dict] | list[DataSample]
        """
        return super().__call__(inputs, return_datasamples, batch_size,
                                **kwargs)

    def _inputs_to_list(self, inputs):
        # a folder is one study (mmpretrain's base lists its files)
        if not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        return [study_images(study) for study in inputs]

    def _init_pipeline(self, cfg):
        from mmext.apis.report_generation import build_report_pipeline
        return build_report_pipeline(cfg)

    def _load(self, views):
        from mmext.apis.report_generation import check_study_views
        check_study_views(self.config, views)
        if all(isinstance(v, str) for v in views):
            results = dict(img_path=list(views))
        else:
            from mmcv import imread
            results = dict(img=[imread(v) for v in views])
        results.update(study_id='study', gt_report='')
        return self.pipeline(results)

    def preprocess(self, inputs, batch_size=1):
        chunks = self._get_chunk_data(map(self._load, inputs), batch_size)
        yield from map(default_collate, chunks)

    @torch.no_grad()
    def forward(self, data):
        return self.model.test_step(data)

    def visualize(self, inputs, preds, show=False, **kwargs):
        return super().visualize(inputs, preds, show)

    def postprocess(self,
                    preds,
                    visualization,
                    return_datasamples=False,
                    chexpert=False):
        if chexpert:
            for sample in preds:
                sample.set_field(
                    chexpert_labels(sample.pred_report),
                    'chexpert',
                    field_type='metainfo')
        if return_datasamples:
            return preds
        results = []
        for sample in preds:
            paths = sample.get('img_path')
            res = dict(
                images=list(paths) if paths else ['<array>'] *
                len(sample.get('ori_shape') or [0]),
                report=sample.pred_report)
            if chexpert:
                res['chexpert'] = sample.chexpert
            results.append(res)
        return results
