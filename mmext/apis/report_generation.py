# Copyright (c) mmext contributors. All rights reserved.
"""Report generation helpers: vocabulary restore and single-study inference.

:func:`load_report_config` -> :func:`check_study_views` ->
:func:`build_report_model` -> :func:`generate_report` is what
``tools/report/generate.py`` runs for one study.

R2Gen rebuilds its vocabulary from ``annotation.json`` every time it runs,
so testing a checkpoint next to different data (another split file, a new
threshold) silently shuffles the token ids, or fails with an embedding size
mismatch. mmext data sets put the vocabulary into every checkpoint's
``meta['dataset_meta']['vocab']``; :func:`restore_vocab_from_checkpoint`
puts it back into the config before anything is built.
"""
import copy
import inspect
import os.path as osp
import warnings

from mmengine.config import Config

from mmext.utils import safe_torch_load
from mmext.utils.config import format_config_path, iter_config

__all__ = [
    'restore_vocab_from_checkpoint', 'read_checkpoint_vocab',
    'set_tokenizer_vocab', 'build_report_pipeline', 'generate_report',
    'load_report_config', 'expected_views', 'check_study_views',
    'build_report_model'
]


def _dataset_meta(checkpoint_path):
    ckpt = safe_torch_load(checkpoint_path, map_location='cpu')
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    return (meta or {}).get('dataset_meta') or {}


def read_checkpoint_vocab(checkpoint_path):
    """The vocabulary stored in a checkpoint's meta, or None."""
    vocab = _dataset_meta(checkpoint_path).get('vocab')
    return list(vocab) if vocab is not None else None


def set_tokenizer_vocab(node, vocab, trained_with=None, where='cfg'):
    """Set ``vocab`` in every ``tokenizer`` dict under ``node`` (in place).

    Args:
        node (dict | list): Config (sub)tree.
        vocab (list[str]): Tokens in id order.
        trained_with (dict, optional): Tokenizer settings stored with the
            vocabulary (``dataset``, ``clean_mode``); a tokenizer dict that
            differs gets a warning naming both (its references would be
            cleaned differently from the training reports).
        where (str): Path of ``node`` in the config, for the warning.

    Returns:
        int: How many tokenizer dicts were changed.
    """
    count = 0
    for path, _, key, value in iter_config(node):
        # a tokenizer's own entries are not searched
        if key != 'tokenizer' or not isinstance(value, dict) or \
                'tokenizer' in path[:-1]:
            continue
        here = f'{where}.{format_config_path(path)}'
        value['vocab'] = list(vocab)
        for name, trained in (trained_with or {}).items():
            if name in value and value[name] != trained:
                warnings.warn(
                    f'{here}.{name}={value[name]!r} but the checkpoint '
                    f'was trained with {name}={trained!r}')
        count += 1
    return count


def restore_vocab_from_checkpoint(cfg, checkpoint_path):
    """Make every tokenizer in ``cfg`` use the checkpoint's vocabulary.

    Reads ``meta['dataset_meta']['vocab']`` (written by :class:`IUXray` /
    :class:`MIMICCXR` through mmengine's checkpoint hook) and sets
    ``vocab=`` in each ``tokenizer`` dict of the config (model and data
    sets), so nothing is rebuilt from data at test or inference time.

    Args:
        cfg (mmengine.Config | dict): Config, changed in place.
        checkpoint_path (str): mmengine checkpoint.

    Returns:
        list[str] | None: The vocabulary, or None when the checkpoint has
        none (a warning says the tokenizer is rebuilt from the config's
        annotation file, which must then be the training one).
    """
    dataset_meta = _dataset_meta(checkpoint_path)
    vocab = dataset_meta.get('vocab')
    if vocab is None:
        warnings.warn(
            f'{checkpoint_path} has no meta.dataset_meta.vocab: tokenizers '
            'are built from the annotation file named in the config (use the '
            'training annotation.json and threshold, or convert the '
            'checkpoint with a vocabulary)')
        return None
    trained = {
        k: v
        for k, v in (dataset_meta.get('tokenizer') or {}).items()
        if k in ('dataset', 'clean_mode')
    }
    set_tokenizer_vocab(getattr(cfg, '_cfg_dict', cfg), vocab, trained)
    return list(vocab)


def build_report_pipeline(cfg):
    """The test pipeline of ``cfg`` without its dataset-level keys, for
    running on image files outside a data set."""
    from mmengine.dataset import Compose

    from mmext.registry import TRANSFORMS
    pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    return Compose([TRANSFORMS.build(t) for t in pipeline])


def generate_report(model, pipeline, image_paths):
    """Generate a report for one study.

    Args:
        model (R2GenReportGenerator): Model in eval mode.
        pipeline (Compose): Test pipeline (from :func:`build_report_pipeline`).
        image_paths (list[str]): The study's views, in the training order
            (IU X-ray: frontal then lateral).

    Returns:
        str: The generated report.
    """
    import torch
    data = pipeline(
        dict(img_path=list(image_paths), study_id='study', gt_report=''))
    batch = dict(inputs=[data['inputs']], data_samples=[data['data_samples']])
    with torch.no_grad():
        out = model.test_step(batch)
    return out[0].pred_report


def load_report_config(config, checkpoint, cfg_options=None):
    """The config of a report generator, ready to build.

    Merges ``cfg_options``, registers mmext's modules, sets the config's
    default scope and gives every tokenizer the checkpoint's vocabulary
    (:func:`restore_vocab_from_checkpoint`; the checkpoint is read with
    ``safe_torch_load``).

    Args:
        config (str | mmengine.Config): Config file or object.
        checkpoint (str): Trained checkpoint.
        cfg_options (dict, optional): Overrides merged into the config.
            Defaults to None.

    Returns:
        mmengine.Config
    """
    from mmengine.registry import init_default_scope

    from mmext.utils import register_all_modules
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    register_all_modules(init_default_scope=False)
    init_default_scope(cfg.get('default_scope', 'mmext'))
    restore_vocab_from_checkpoint(cfg, checkpoint)
    return cfg


def expected_views(cfg):
    """Views per study the config's test data set uses (IU X-ray 2, MIMIC
    1), or None when the data set type does not say."""
    from mmext.registry import DATASETS
    ds = cfg.test_dataloader.dataset
    if 'num_views' in ds:
        return ds.num_views
    cls = DATASETS.get(ds.type)
    default = inspect.signature(cls.__init__).parameters.get('num_views')
    return default.default if default is not None else None


def check_study_views(cfg, image_paths):
    """Refuse a study whose number of images differs from the config's
    views per study (:func:`expected_views`).

    Raises:
        ValueError: Naming the config, its views and the images given.
    """
    views = expected_views(cfg)
    if views is not None and views != len(image_paths):
        raise ValueError(
            f'{osp.basename(cfg.filename or "config")} uses {views} view(s) '
            f'per study ({cfg.test_dataloader.dataset.type}), got '
            f'{len(image_paths)} image(s)')


def build_report_model(cfg, checkpoint, device='cpu'):
    """The model of ``cfg`` with ``checkpoint``'s weights, in eval mode.

    Like the Runner, merges the config's top-level ``data_preprocessor``
    (image normalisation) into the model, which ``MODELS.build(cfg.model)``
    alone would leave out.

    Args:
        cfg (mmengine.Config): Config from :func:`load_report_config`.
        checkpoint (str): Trained checkpoint (loaded strictly).
        device (str): Defaults to 'cpu'.

    Returns:
        torch.nn.Module: The report generator.
    """
    from mmengine.runner import load_checkpoint

    from mmext.registry import MODELS
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor'):
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    return model.to(device).eval()
