# Copyright (c) mmext contributors. All rights reserved.
"""Layer-by-layer alignment of two representations: collect, score, write.

Two sides are compared on the same samples: two streams of one model (e.g.
ViLBERT's text and vision layers, co-attention outputs included) or two
models (e.g. TRAR-ViT and ViT, ``config2``/``checkpoint2``). Both cases go
through :func:`collect_representations` and
:func:`~mmext.evaluation.metrics.alignment.compare_layers`.
Outputs: ``alignment.json``, ``alignment.csv``, one layer x layer heat map
per metric and a per-layer curve plot (:mod:`.alignment_plots`).

The loaders are built in measurement mode
(:func:`~mmext.analysis.measurement.measurement_loader_cfg`: no ITM caption
swaps, no MLM / region / patch masking, no flips) and each pass is seeded
alike, so two checkpoints of one config see identical inputs; when two
passes still disagree the error names the samples and the input keys that
differ.
"""
import csv
import json
import os
import os.path as osp
import random

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner, load_checkpoint

from mmext.evaluation.metrics.alignment import DEFAULT_METRICS, compare_layers
from .alignment_plots import plot_alignment, side_labels
from .collect import collect_representations
from .measurement import input_differences, measurement_loader_cfg
from .representations import (default_taps, has_layer_outputs, parse_taps,
                              side_names)

__all__ = [
    'build_model_and_loader', 'model_taps', 'collect_sides', 'run_alignment',
    'write_alignment', 'plot_alignment'
]

#: sides of a model with per-layer text / vision outputs (ViLBERT): every
#: layer of each stream, then each co-attention block's output
TWO_STREAM_SIDES = (['text.*',
                     'coattn.*.text'], ['vision.*', 'coattn.*.vision'])


def build_model_and_loader(config,
                           checkpoint=None,
                           split='test',
                           batch_size=None,
                           cfg_options=None,
                           changes=None):
    """Model (weights from ``checkpoint``) and the ``{split}_dataloader``
    of a config in measurement mode (unshuffled, random transforms and ITM
    swaps off: :func:`~mmext.analysis.measurement.measurement_loader_cfg`).

    Args:
        config (str | Config): Config file or object.
        checkpoint (str, optional): Weights; None keeps the initial ones.
        split (str): ``'train'``, ``'val'`` or ``'test'``. Defaults to
            ``'test'``.
        batch_size (int, optional): Override the loader's batch size.
        cfg_options (dict, optional): Merged into the config first.
        changes (list, optional): Extended with what measurement mode
            switched off.

    Returns:
        tuple[BaseModel, DataLoader, Config]
    """
    from mmext.registry import MODELS
    from mmext.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    key = f'{split}_dataloader'
    if not cfg.get(key):
        raise ValueError(f'{getattr(cfg, "filename", config)} has no {key}; '
                         'choose another --split')
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    loader_cfg, switched = measurement_loader_cfg(cfg[key], batch_size)
    if changes is not None:
        changes.extend(switched)
    with DefaultScope.overwrite_default_scope('mmext'):
        model = MODELS.build(cfg.model)
        if checkpoint is not None:
            load_checkpoint(model, checkpoint, map_location='cpu')
        loader = Runner.build_dataloader(loader_cfg)
    return model, loader, cfg


def model_taps(model, layers=None, layers2=None):
    """The two sides' taps on one model.

    ``layers`` / ``layers2`` are tap specs. Without either, a model with
    per-layer text / vision outputs (ViLBERT) compares its text side with
    its vision side (:data:`TWO_STREAM_SIDES`); otherwise side b is side a
    (a layer x layer self-similarity map) and side a defaults to every
    backbone block.
    """
    if layers is None and layers2 is None and has_layer_outputs(model):
        return tuple(parse_taps(s, model) for s in TWO_STREAM_SIDES)
    taps_a = parse_taps(layers, model) if layers else default_taps(model)
    taps_b = parse_taps(layers2, model) if layers2 else taps_a
    return taps_a, taps_b


def model_side_taps(model, layers=None):
    """One model's taps when it is one side of a two-model comparison:
    ``layers``, else both streams of a two-stream model (ViLBERT), else
    every backbone block."""
    if layers is None and has_layer_outputs(model):
        layers = TWO_STREAM_SIDES[0] + TWO_STREAM_SIDES[1]
    return parse_taps(layers, model) if layers else default_taps(model)


def collect_sides(model,
                  loader,
                  taps_a,
                  taps_b,
                  pooling='auto',
                  max_samples=None,
                  progress=True,
                  desc='model',
                  details=None):
    """Collect both sides' taps in one pass over ``loader``.

    Returns:
        tuple[dict, dict, list]: Side a's and side b's ``{name: (N, D)}``
        (glob taps resolved) and the sample ids. ``details`` as in
        :func:`collect_representations`.
    """
    taps = taps_a + [t for t in taps_b if t not in taps_a]
    feats, ids = collect_representations(model, loader, taps, pooling,
                                         max_samples, progress, desc, details)
    names = list(feats)
    return ({n: feats[n]
             for n in side_names(taps_a, names)},
            {n: feats[n]
             for n in side_names(taps_b, names)}, ids)


def _seed_all(seed=0):
    """The same RNG state before each pass: random transforms left on (no
    known switch) then draw the same numbers for both models."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _check_same_samples(ids, ids2, split, details, details2, same_config,
                        changes):
    """Both passes must see the same samples; with one config, the same
    inputs too (else the measurement mode missed a random step)."""
    if ids != ids2:
        bad = next((i for i, (x, y) in enumerate(zip(ids, ids2)) if x != y),
                   None)
        raise ValueError(
            f"the two {split} loaders give different samples "
            f'({len(ids)} vs {len(ids2)}' +
            (f', first difference at #{bad}: {ids[bad]} vs {ids2[bad]}'
             if bad is not None else '') + '); point both configs at the '
            'same data and sample order (--cfg-options)')
    diff = input_differences(ids, details['digests'], details2['digests'])
    if diff and same_config:
        left_on = [c for c in changes if 'left on' in c]
        raise ValueError(
            f'one config, but the two passes over its {split} loader give '
            f'different inputs: {"; ".join(diff)}' +
            (f' (random transforms without an off switch: {left_on})'
             if left_on else '') + '; make the test pipeline deterministic '
            '(--cfg-options)')
    return diff


def run_alignment(config,
                  checkpoint,
                  out_dir,
                  layers=None,
                  config2=None,
                  checkpoint2=None,
                  layers2=None,
                  pooling='auto',
                  split='test',
                  max_samples=None,
                  batch_size=None,
                  metrics=DEFAULT_METRICS,
                  pairs='all',
                  cfg_options=None,
                  progress=True,
                  **compare_kwargs):
    """Collect both sides, score every requested layer pair, write files.

    Args:
        config, checkpoint: The (first) model.
        out_dir (str): Output folder.
        layers (list[str], optional): Tap specs of side a. Defaults to every
            backbone block, or a two-stream model's text side.
        config2, checkpoint2 (str, optional): A second model for side b,
            run on its own ``{split}_dataloader`` (must hold the same
            samples in the same order).
        layers2 (list[str], optional): Tap specs of side b.
        pooling (str): ``'auto'`` (feature maps: mean over H x W; token
            sequences: CLS when they start with one, else mean; see
            :mod:`.representations`), ``'cls'`` or ``'mean'``. Defaults to
            ``'auto'``.
        split (str): Data split. Defaults to ``'test'``.
        max_samples (int, optional): Samples to use (the first N).
        batch_size (int, optional): Loader batch size override.
        metrics (Sequence[str]): Defaults to mutual k-NN, linear CKA, SVCCA.
        pairs (str): ``'all'`` or ``'matched'``. Defaults to ``'all'``.
        cfg_options (dict, optional): Applied to both configs.
        progress (bool): Progress bars. Defaults to True.
        **compare_kwargs: ``k``, ``normalize``, ``svcca_keep``,
            ``rbf_sigma``, ``chunk_size`` of ``compare_layers``.

    Returns:
        dict: The record written to ``alignment.json``.
    """
    changes, details, details2, diff = [], {}, {}, []
    model, loader, _ = build_model_and_loader(config, checkpoint, split,
                                              batch_size, cfg_options, changes)
    _seed_all()
    if config2 is None:
        taps_a, taps_b = model_taps(model, layers, layers2)
        feats_a, feats_b, ids = collect_sides(model, loader, taps_a, taps_b,
                                              pooling, max_samples, progress,
                                              'model', details)
        details2 = details
    else:
        feats_a, _, ids = collect_sides(model, loader,
                                        model_side_taps(model, layers), [],
                                        pooling, max_samples, progress,
                                        'model 1', details)
        del model, loader
        model2, loader2, _ = build_model_and_loader(config2, checkpoint2,
                                                    split, batch_size,
                                                    cfg_options, changes)
        _seed_all()
        feats_b, _, ids2 = collect_sides(model2, loader2,
                                         model_side_taps(model2, layers2), [],
                                         pooling, max_samples, progress,
                                         'model 2', details2)
        same = osp.abspath(str(config)) == osp.abspath(str(config2))
        diff = _check_same_samples(ids, ids2, split, details, details2, same,
                                   changes)
    records = compare_layers(feats_a, feats_b, metrics, pairs,
                             **compare_kwargs)
    result = dict(
        config=str(config),
        checkpoint=checkpoint,
        config2=config2,
        checkpoint2=checkpoint2,
        split=split,
        pooling=pooling,
        pooling_a={n: details['pooling'].get(n)
                   for n in feats_a},
        pooling_b={n: details2['pooling'].get(n)
                   for n in feats_b},
        measurement_mode=sorted(set(changes)),
        input_differences=diff,
        num_samples=len(ids),
        layers_a=list(feats_a),
        layers_b=list(feats_b),
        metrics=list(metrics),
        options=compare_kwargs,
        records=records)
    result['sides'] = list(side_labels(result))
    write_alignment(result, out_dir)
    return result


def write_alignment(result, out_dir):
    """``alignment.json``, ``alignment.csv`` and the PNG plots."""
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'alignment.json'), 'w') as f:
        json.dump(result, f, indent=1)
    metrics = result['metrics']
    with open(osp.join(out_dir, 'alignment.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, ['layer_a', 'layer_b', *metrics])
        writer.writeheader()
        writer.writerows(result['records'])
    return plot_alignment(result, out_dir)
