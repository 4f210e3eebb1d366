# Copyright (c) mmext contributors. All rights reserved.
"""Report generation helpers: vocabulary restore and single-study inference.

R2Gen rebuilds its vocabulary from ``annotation.json`` every time it runs,
so testing a checkpoint next to different data (another split file, a new
threshold) silently shuffles the token ids, or fails with an embedding size
mismatch. mmext data sets put the vocabulary into every checkpoint's
``meta['dataset_meta']['vocab']``; :func:`restore_vocab_from_checkpoint`
puts it back into the config before anything is built.
"""
import copy
import warnings

from mmext.utils import safe_torch_load

__all__ = ['restore_vocab_from_checkpoint', 'read_checkpoint_vocab',
           'set_tokenizer_vocab', 'build_report_pipeline',
           'generate_report']


def read_checkpoint_vocab(checkpoint_path):
    """The vocabulary stored in a checkpoint's meta, or None."""
    ckpt = safe_torch_load(checkpoint_path, map_location='cpu')
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    dataset_meta = (meta or {}).get('dataset_meta') or {}
    vocab = dataset_meta.get('vocab')
    return list(vocab) if vocab is not None else None


def set_tokenizer_vocab(node, vocab):
    """Set ``vocab`` in every ``tokenizer`` dict under ``node`` (in place).

    Returns:
        int: How many tokenizer dicts were changed.
    """
    count = 0
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'tokenizer' and isinstance(value, dict):
                value['vocab'] = list(vocab)
                count += 1
            else:
                count += set_tokenizer_vocab(value, vocab)
    elif isinstance(node, (list, tuple)):
        for value in node:
            count += set_tokenizer_vocab(value, vocab)
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
    vocab = read_checkpoint_vocab(checkpoint_path)
    if vocab is None:
        warnings.warn(
            f'{checkpoint_path} has no meta.dataset_meta.vocab: tokenizers '
            'are built from the annotation file named in the config (use the '
            'training annotation.json and threshold, or convert the '
            'checkpoint with a vocabulary)')
        return None
    set_tokenizer_vocab(getattr(cfg, '_cfg_dict', cfg), vocab)
    return vocab


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
    data = pipeline(dict(img_path=list(image_paths),
                         study_id='study', gt_report=''))
    batch = dict(inputs=[data['inputs']], data_samples=[data['data_samples']])
    with torch.no_grad():
        out = model.test_step(batch)
    return out[0].pred_report
