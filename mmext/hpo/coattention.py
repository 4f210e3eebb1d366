# Copyright (c) mmext contributors. All rights reserved.
"""Co-attention placement from a few continuous parameters (the thesis'
NAS space, cesipy/bsc-code ``experiment_tracker.py``)."""
from statistics import NormalDist

__all__ = ['coattention_layers', 'suggest_coattention']


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
