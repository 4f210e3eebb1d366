# Copyright (c) mmext contributors. All rights reserved.
"""Layer-by-layer alignment of two representations: collect, score, write.

Two sides are compared on the same samples: two streams of one model (e.g.
ViLBERT's text and vision layers, co-attention outputs included) or two
models (e.g. TRAR-ViT and ViT, ``config2``/``checkpoint2``). Both cases go
through :func:`collect_representations` and
:func:`~mmext.evaluation.metrics.alignment.compare_layers`.
Outputs: ``alignment.json``, ``alignment.csv``, one layer x layer heat map
per metric and a per-layer curve plot.
"""
import copy
import csv
import json
import os
import os.path as osp

from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner, load_checkpoint

from mmext.evaluation.metrics.alignment import (ALIGNMENT_METRICS,
                                                DEFAULT_METRICS,
                                                compare_layers)
from .representations import (collect_representations, default_taps,
                              has_layer_outputs, parse_taps, side_names)

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
                           cfg_options=None):
    """Model (weights from ``checkpoint``) and the ``{split}_dataloader``
    of a config, unshuffled.

    Args:
        config (str | Config): Config file or object.
        checkpoint (str, optional): Weights; None keeps the initial ones.
        split (str): ``'train'``, ``'val'`` or ``'test'``. Defaults to
            ``'test'``.
        batch_size (int, optional): Override the loader's batch size.
        cfg_options (dict, optional): Merged into the config first.

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
    loader_cfg = copy.deepcopy(cfg[key])
    loader_cfg['sampler'] = dict(type='DefaultSampler', shuffle=False)
    loader_cfg['persistent_workers'] = False
    loader_cfg['pin_memory'] = False
    if batch_size:
        loader_cfg['batch_size'] = batch_size
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


def collect_sides(model,
                  loader,
                  taps_a,
                  taps_b,
                  pooling='cls',
                  max_samples=None,
                  progress=True,
                  desc='model'):
    """Collect both sides' taps in one pass over ``loader``.

    Returns:
        tuple[dict, dict, list]: Side a's and side b's ``{name: (N, D)}``
        (glob taps resolved) and the sample ids.
    """
    taps = taps_a + [t for t in taps_b if t not in taps_a]
    feats, ids = collect_representations(model, loader, taps, pooling,
                                         max_samples, progress, desc)
    names = list(feats)
    return ({n: feats[n]
             for n in side_names(taps_a, names)},
            {n: feats[n]
             for n in side_names(taps_b, names)}, ids)


def _check_same_samples(ids, ids2, split):
    if ids == ids2:
        return
    bad = next((i for i, (x, y) in enumerate(zip(ids, ids2)) if x != y), None)
    raise ValueError(
        f"the two configs' {split} loaders give different samples "
        f'({len(ids)} vs {len(ids2)}' +
        (f', first difference at #{bad}: {ids[bad]} vs {ids2[bad]}'
         if bad is not None else '') +
        '); point both at the same data (--cfg-options)')


def run_alignment(config,
                  checkpoint,
                  out_dir,
                  layers=None,
                  config2=None,
                  checkpoint2=None,
                  layers2=None,
                  pooling='cls',
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
        pooling (str): ``'cls'`` or ``'mean'``. Defaults to ``'cls'``.
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
    model, loader, _ = build_model_and_loader(config, checkpoint, split,
                                              batch_size, cfg_options)
    if config2 is None:
        taps_a, taps_b = model_taps(model, layers, layers2)
        feats_a, feats_b, ids = collect_sides(model, loader, taps_a, taps_b,
                                              pooling, max_samples, progress)
    else:
        model2, loader2, _ = build_model_and_loader(config2, checkpoint2,
                                                    split, batch_size,
                                                    cfg_options)
        taps_a = model_taps(model, layers)[0]
        taps_b = model_taps(model2, layers2)[0]
        feats_a, _, ids = collect_sides(model, loader, taps_a, [], pooling,
                                        max_samples, progress, 'model 1')
        feats_b, _, ids2 = collect_sides(model2, loader2, taps_b, [], pooling,
                                         max_samples, progress, 'model 2')
        _check_same_samples(ids, ids2, split)
    records = compare_layers(feats_a, feats_b, metrics, pairs,
                             **compare_kwargs)
    result = dict(
        config=str(config),
        checkpoint=checkpoint,
        config2=config2,
        checkpoint2=checkpoint2,
        split=split,
        pooling=pooling,
        num_samples=len(ids),
        layers_a=list(feats_a),
        layers_b=list(feats_b),
        metrics=list(metrics),
        options=compare_kwargs,
        records=records)
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


def _matrix(result, metric):
    import numpy as np
    la, lb = result['layers_a'], result['layers_b']
    mat = np.full((len(la), len(lb)), np.nan)
    for r in result['records']:
        mat[la.index(r['layer_a']), lb.index(r['layer_b'])] = r[metric]
    return mat


def _side_label(result, side):
    cfg = result['config2'] if side == 'b' and result.get('config2') \
        else result['config']
    return f'{side}: {osp.splitext(osp.basename(str(cfg)))[0]}'


def plot_alignment(result, out_dir):
    """One layer x layer heat map per metric (``heatmap_{metric}.png``) and
    per-layer curves (``per_layer.png``): the i-th layer of side a against
    the i-th of side b when both sides have as many layers, else against
    its best-matching layer of side b.

    Returns:
        list[str]: Written files.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    la, lb = result['layers_a'], result['layers_b']
    files = []
    for metric in result['metrics']:
        mat = _matrix(result, metric)
        fig, ax = plt.subplots(
            figsize=(1.5 + 0.45 * len(lb), 1.2 + 0.4 * len(la)))
        im = ax.imshow(mat, cmap='viridis', aspect='auto')
        ax.set_xticks(range(len(lb)), lb, rotation=90, fontsize=7)
        ax.set_yticks(range(len(la)), la, fontsize=7)
        ax.set_xlabel(_side_label(result, 'b'))
        ax.set_ylabel(_side_label(result, 'a'))
        ax.set_title(f'{metric} (N={result["num_samples"]})', fontsize=9)
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        path = osp.join(out_dir, f'heatmap_{metric}.png')
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files.append(path)
    matched = len(la) == len(lb)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for metric in result['metrics']:
        mat = _matrix(result, metric)
        if matched:
            y = np.diag(mat)
        else:
            best = np.nanmax if ALIGNMENT_METRICS[metric] else np.nanmin
            y = best(mat, axis=1)
        ax.plot(range(len(la)), y, marker='o', label=metric)
    ax.set_xticks(range(len(la)), la, rotation=90, fontsize=7)
    ax.set_ylabel('score')
    ax.set_title(
        'layer i of a vs layer i of b'
        if matched else 'each layer of a vs its best layer of b',
        fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = osp.join(out_dir, 'per_layer.png')
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return files + [path]
