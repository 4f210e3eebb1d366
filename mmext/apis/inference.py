# Copyright (c) mmext contributors. All rights reserved.
"""Single-image classification with any mmext / mmpretrain config.

mmpretrain's :class:`ImageClassificationInferencer` builds a config's model in
the ``mmpretrain`` scope, where mmext types (``TRARViT``, ``PartialFreeze``)
are unknown. :func:`init_classifier` builds the model in the ``mmext`` scope
and hands the built model to that inferencer (its pipeline and
post-processing are reused). It also fixes the colour order for array data
sets (CIFAR): their pipelines have no ``LoadImageFromFile`` because the
pickles hold RGB arrays, while an image file is read as BGR.
"""
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint

__all__ = ['init_classifier', 'predict_topk']


def init_classifier(config, checkpoint, device='cpu', cfg_options=None):
    """Build a classifier from ``config``, load ``checkpoint``, wrap it.

    Args:
        config (str | Config): Config file or object.
        checkpoint (str): Weights (an mmengine checkpoint or state dict).
        device (str): Defaults to ``'cpu'``.
        cfg_options (dict, optional): Overrides merged into the config.

    Returns:
        mmpretrain.apis.ImageClassificationInferencer
    """
    from mmpretrain.apis import ImageClassificationInferencer

    from mmext.registry import DATASETS, MODELS
    from mmext.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    # the checkpoint replaces any init_cfg (its file need not exist here)
    with DefaultScope.overwrite_default_scope('mmext'):
        model = MODELS.build(cfg.model)
        ckpt = load_checkpoint(model, checkpoint, map_location='cpu')
        meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
        dataset_meta = meta.get('dataset_meta') or {}
        if not dataset_meta and cfg.get('test_dataloader'):
            dataset_cls = DATASETS.get(cfg.test_dataloader.dataset.type)
            dataset_meta = dict(getattr(dataset_cls, 'METAINFO', {}))
    pipeline = cfg.test_dataloader.dataset.pipeline
    if not any(t.get('type') == 'LoadImageFromFile' for t in pipeline):
        # array data set (RGB arrays); the inferencer reads files as BGR
        preprocessor = model.data_preprocessor
        if hasattr(preprocessor, 'to_rgb'):
            preprocessor.to_rgb = not preprocessor.to_rgb
    model._dataset_meta = dataset_meta
    model._config = cfg
    model.to(device).eval()
    return ImageClassificationInferencer(model, device=device)


def predict_topk(inferencer, image, topk=5):
    """Top-k predictions for one image file.

    Returns:
        list[dict]: ``index``, ``name`` (None without class names) and
        ``score`` (softmax probability), best first.
    """
    # the inferencer's steps without __call__'s progress bar
    data = next(inferencer.preprocess([image]))
    pred = inferencer.forward(data)[0]
    scores = pred.pred_score.cpu().numpy()
    classes = inferencer.classes
    order = scores.argsort()[::-1][:topk]
    return [
        dict(
            index=int(i),
            name=classes[i] if classes is not None else None,
            score=float(scores[i])) for i in order
    ]
