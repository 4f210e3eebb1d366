# Copyright (c) mmext contributors. All rights reserved.
"""Inferencers for every mmext system, on mmpretrain's ``BaseInferencer``.

=================  ============================  ===========================
config model       inferencer                    one sample
=================  ============================  ===========================
image classifier   mmpretrain's                  image -> top-k classes
                   ``ImageClassificationInf.``   (:func:`init_classifier`)
ViLBERT(Class.)    :class:`ViLBERTInferencer`    image + text -> ITM score /
                                                 task label
R2Gen              :class:`ReportInferencer`     study views -> report
BUTD               :class:`BUTDInferencer`       image -> regions (+ PNG)
=================  ============================  ===========================

:func:`get_inferencer` picks one from the config's model type and
:func:`inference_model` runs it on one sample, as mmpretrain's
``inference_model`` does for model-zoo names (which mmext configs are not).
"""
from .base import (TASKS, MMExtInferencer, build_inference_model, load_config,
                   model_task)
from .butd import BUTDInferencer, draw_regions
from .r2gen import (ReportInferencer, chexpert_labels, init_report_model,
                    study_images)
from .vilbert import ViLBERTInferencer, read_pairs_file

__all__ = [
    'MMExtInferencer', 'ViLBERTInferencer', 'ReportInferencer',
    'BUTDInferencer', 'build_inference_model', 'init_report_model',
    'get_inferencer', 'inference_model', 'model_task', 'load_config',
    'read_pairs_file', 'study_images', 'chexpert_labels', 'draw_regions',
    'TASKS'
]

INFERENCERS = dict(
    vilbert=ViLBERTInferencer, report=ReportInferencer, butd=BUTDInferencer)


def get_inferencer(config,
                   checkpoint=None,
                   device=None,
                   cfg_options=None,
                   **kwargs):
    """The inferencer of the config's model type.

    Args:
        config (str | Config): Config file or object.
        checkpoint (str, optional): Weights. Defaults to None.
        device (str, optional): Defaults to None (CPU).
        cfg_options (dict, optional): Config overrides.
        **kwargs: Further arguments of the inferencer (``decode`` for
            reports, ``select_cfg`` for BUTD).

    Returns:
        BaseInferencer: An mmext inferencer, or mmpretrain's
        ``ImageClassificationInferencer`` for classifiers.
    """
    cfg = load_config(config, cfg_options)
    task = model_task(cfg)
    if task == 'classification':
        from ..inference import init_classifier
        if kwargs:
            raise TypeError(f'classification takes no {sorted(kwargs)}')
        return init_classifier(cfg, checkpoint, device or 'cpu')
    return INFERENCERS[task](cfg, checkpoint, device, **kwargs)


def inference_model(config, inputs, checkpoint=None, device=None, **kwargs):
    """Run the config's inferencer on ``inputs`` and return the first
    result (mmpretrain's ``inference_model`` for mmext configs).

    ``kwargs`` go to the call (e.g. ``texts`` for ViLBERT, ``chexpert``
    for reports, ``out_dir`` for BUTD).
    """
    inferencer = get_inferencer(config, checkpoint, device)
    return inferencer(inputs, **kwargs)[0]
