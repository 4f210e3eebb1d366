# Copyright (c) mmext contributors. All rights reserved.
"""What every mmext inferencer shares: building a config's model in the
mmext scope with a checkpoint, and the task a config's model belongs to.

mmpretrain's ``get_model`` builds in the ``mmpretrain`` scope, does not
restore what mmext keeps in a checkpoint's meta (R2Gen's vocabulary, BUTD's
class names) and moves nothing but the model; :func:`build_inference_model`
is its mmext counterpart and :class:`MMExtInferencer` the
``BaseInferencer`` that uses it.
"""
import copy

from mmengine.config import Config
from mmengine.model import BaseModel
from mmpretrain.apis.base import BaseInferencer

__all__ = [
    'MMExtInferencer', 'build_inference_model', 'load_config', 'model_task',
    'TASKS'
]

#: model type -> task name (everything else is 'classification')
TASKS = dict(
    ViLBERT='vilbert',
    ViLBERTClassifier='vilbert',
    R2GenReportGenerator='report',
    BUTDFasterRCNN='butd')


def load_config(config, cfg_options=None):
    """A copy of ``config`` (file or object) with ``cfg_options`` merged;
    mmext's modules are registered."""
    from mmext.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        cfg = Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def model_task(config):
    """``'vilbert'``, ``'report'``, ``'butd'`` or ``'classification'`` for
    the model type of ``config`` (a file, Config or built model)."""
    if isinstance(config, BaseModel):
        name = type(config).__name__
    else:
        cfg = config if isinstance(config, Config) else load_config(config)
        name = str(cfg.model.get('type', '')).split('.')[-1]
    return TASKS.get(name, 'classification')


def _dataset_meta(cfg, checkpoint_meta):
    from mmext.registry import DATASETS
    meta = dict((checkpoint_meta or {}).get('dataset_meta') or {})
    if not meta and cfg.get('test_dataloader'):
        ds_type = cfg.test_dataloader.dataset.get('type')
        cls = DATASETS.get(ds_type) if ds_type else None
        meta = dict(getattr(cls, 'METAINFO', None) or {})
    return meta


def build_inference_model(config,
                          checkpoint=None,
                          device=None,
                          cfg_options=None,
                          strict=True):
    """Build the config's model in the mmext scope and load ``checkpoint``.

    The config's top-level ``data_preprocessor`` is merged into the model
    (as the Runner does), weights go through mmengine's ``load_checkpoint``
    (which mmext routes through its safe loader) on the CPU, then the model
    moves to ``device``. ``model._config`` and ``model._dataset_meta`` are
    set as mmpretrain's inferencers expect.

    Args:
        config (str | Config): Config file or object (not changed).
        checkpoint (str, optional): Weights. Defaults to None (as built).
        device (str | torch.device, optional): Defaults to None (CPU).
        cfg_options (dict, optional): Overrides merged into the config.
        strict (bool): Refuse missing / unexpected keys. Defaults to True.

    Returns:
        mmengine.model.BaseModel: The model in eval mode.

    Raises:
        ValueError: The checkpoint does not fit the model (one line naming
            both and the first mismatch).
    """
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint

    from mmext.registry import MODELS
    cfg = load_config(config, cfg_options)
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope('mmext'):
        model = MODELS.build(model_cfg)
    meta = {}
    if checkpoint is not None:
        try:
            ckpt = load_checkpoint(
                model, str(checkpoint), map_location='cpu', strict=strict)
        except RuntimeError as e:  # missing / unexpected / shape mismatch
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            first = lines[1] if len(lines) > 1 else lines[0]
            raise ValueError(
                f'{checkpoint} does not fit the model of '
                f'{cfg.filename or "the config"} ({first}); give a '
                'checkpoint trained with this config') from None
        meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    model._config = cfg
    model._dataset_meta = _dataset_meta(cfg, meta)
    if device is not None:
        model.to(device)
    return model.eval()


class MMExtInferencer(BaseInferencer):
    """mmpretrain's ``BaseInferencer`` for mmext configs.

    ``model`` is a config file / object (built by
    :func:`build_inference_model` with ``pretrained`` as checkpoint) or a
    built model carrying ``_config`` (as :func:`build_inference_model` and
    mmpretrain's ``get_model`` leave it). Steps and ``__call__`` arguments
    (``batch_size``, ``return_datasamples``) are mmpretrain's.

    Args:
        model (str | Config | BaseModel): The model or its config.
        pretrained (str, optional): Checkpoint. Defaults to None.
        device (str | torch.device, optional): Defaults to None (CPU).
        cfg_options (dict, optional): Config overrides.
    """

    def __init__(self, model, pretrained=None, device=None, cfg_options=None):
        if not isinstance(model, BaseModel):
            model = self.build_model(model, pretrained, device, cfg_options)
            pretrained = None
        elif getattr(model, '_config', None) is None:
            raise ValueError(
                f'{type(self).__name__}: the {type(model).__name__} has no '
                '_config; build it with mmext.apis.build_inference_model '
                'or pass the config file')
        super().__init__(model, pretrained=pretrained or False, device=device)

    def build_model(self, config, checkpoint, device, cfg_options):
        """The model of ``config`` (subclasses restore extra state)."""
        return build_inference_model(config, checkpoint, device, cfg_options)

    @property
    def dataset_meta(self):
        return getattr(self.model, '_dataset_meta', None) or {}
