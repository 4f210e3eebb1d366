# Copyright (c) mmext contributors. All rights reserved.
"""Co-attention placement from a few continuous parameters (the thesis'
NAS space, cesipy/bsc-code ``experiment_tracker.py``)."""
from statistics import NormalDist

__all__ = [
    'coattention_layers', 'suggest_coattention', 'vilbert_key', 'stream_depths'
]


def coattention_layers(num,
                       t_center,
                       t_spread,
                       v_center,
                       v_spread,
                       num_layers=12):
    """Text and vision co-attention layer ids for ``num`` blocks.

    Block i sits at the ``(i + 1) / (num + 1)`` quantile of a normal
    distribution with the given centre and spread:
    ``clip(round(c + s * Φ⁻¹(q)), 0, num_layers - 1)``; each side is
    de-duplicated and sorted, and both are cut to the shorter list (the
    blocks pair text and vision layers), as in the thesis code. ``num = 0``
    gives no co-attention (the baseline). Python's ``round`` (half to
    even) as in the thesis code. ``num_layers`` is one depth for both
    streams or a ``(text, vision)`` pair (e.g. ``(12, 6)`` for the
    6-layer region stream).

    Returns:
        tuple[list[int], list[int]]: (text ids, vision ids).

    Example:
        >>> coattention_layers(3, 6.0, 2.0, 4.0, 1.0)
        ([5, 6, 7], [3, 4, 5])
    """
    if num <= 0:
        return [], []
    t_max, v_max = (num_layers,
                    num_layers) if isinstance(num_layers, int) else num_layers
    text, vision = set(), set()
    for i in range(num):
        z = NormalDist().inv_cdf((i + 1) / (num + 1))
        text.add(int(min(max(round(t_center + t_spread * z), 0), t_max - 1)))
        vision.add(int(min(max(round(v_center + v_spread * z), 0), v_max - 1)))
    n = min(len(text), len(vision))
    return sorted(text)[:n], sorted(vision)[:n]


def suggest_coattention(trial,
                        max_blocks=8,
                        num_layers=12,
                        center=(2.0, 10.0),
                        spread=(1.0, 4.0)):
    """Suggest the thesis' parameters (``num_coattn_layers``, ``t_center``,
    ``t_spread``, ``v_center``, ``v_spread``) and map them to layer ids.

    ``num_coattn_layers`` ranges over ``[0, max_blocks]``: 0 is the
    no-co-attention baseline, which the thesis' ``[2, 8]`` could not reach
    (it also pruned placements with fewer than 2 distinct ids; any
    placement is trained here). Centres are scaled from the thesis'
    12-layer range to ``num_layers`` (``(text, vision)`` or one int).
    """
    t_layers, v_layers = (num_layers, num_layers) if isinstance(
        num_layers, int) else num_layers
    num = trial.suggest_int('num_coattn_layers', 0, max_blocks)
    t_c = trial.suggest_float('t_center', *[c * t_layers / 12 for c in center])
    t_s = trial.suggest_float('t_spread', *spread)
    v_c = trial.suggest_float('v_center', *[c * v_layers / 12 for c in center])
    v_s = trial.suggest_float('v_spread', *spread)
    return coattention_layers(num, t_c, t_s, v_c, v_s, num_layers)


def vilbert_key(cfg):
    """Where a config's ViLBERT sits: ``'model'`` (a pre-training config,
    ``model.coattention``) or ``'model.vilbert'`` (a ``ViLBERTClassifier``,
    ``model.vilbert.coattention``), so one space file serves both.

    Raises:
        ValueError: The config has no ViLBERT model.
    """
    model = cfg.get('model') or {}
    if isinstance(model.get('coattention'), dict):
        return 'model'
    inner = model.get('vilbert')
    if isinstance(inner, dict) and isinstance(inner.get('coattention'), dict):
        return 'model.vilbert'
    raise ValueError(f'model type {model.get("type")!r} has neither '
                     'model.coattention (ViLBERT) nor '
                     'model.vilbert.coattention (ViLBERTClassifier); use '
                     'a configs/vilbert config')


def _text_depth(text):
    import json
    import os.path as osp
    folder = text.get('folder') or ''
    config = osp.join(folder, 'config.json')
    if osp.isfile(config):  # a local BERT folder (the tiny configs)
        with open(config) as f:
            return int(json.load(f)['num_hidden_layers'])
    return 24 if 'large' in folder else 12  # a hub name: BERT-base / large


def _vision_depth(visual):
    if visual.get('type') == 'RegionVisualStream':
        return int(visual.get('num_layers', 6))
    arch = (visual.get('backbone') or {}).get('arch', 'b')
    if isinstance(arch, str):
        from mmpretrain.models import VisionTransformer
        arch = VisionTransformer.arch_zoo[arch.lower()]
    return int(arch['num_layers']) + int(visual.get('num_extra_layers', 0))


def stream_depths(cfg):
    """``(text, vision)`` layers of a ViLBERT config, for
    :func:`suggest_coattention`: the BERT folder's ``config.json`` (12 for a
    hub name), the region stream's ``num_layers`` or the ViT's depth."""
    vilbert = cfg.model if vilbert_key(cfg) == 'model' else cfg.model.vilbert
    return _text_depth(vilbert.text), _vision_depth(vilbert.visual)
