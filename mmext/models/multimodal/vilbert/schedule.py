# Copyright (c) mmext contributors. All rights reserved.
"""Where the co-attention layers sit: ViLBERT's "after i layers" ids.

A schedule is two equal-length lists ``text_ids`` / ``vision_ids``. Pair k
means: run the text stream up to (not including) layer ``text_ids[k]`` and
the vision stream up to layer ``vision_ids[k]``, then co-attention block k;
the layers left over run after the last block. So id ``i`` reads "after i
layers" and ``[]`` / ``[]`` is the two-stream baseline without fusion. This
is vilbert-multi-task's ``BertEncoder`` loop (``v_biattention_id`` /
``t_biattention_id``) and the thesis code's; neither checks the ids, so an
out-of-range or decreasing id silently changed the model there.
"""

from typing import List, Optional, Sequence, Tuple

__all__ = ['COATTENTION_PRESETS', 'resolve_schedule', 'schedule_steps']

#: name -> (text_ids, vision_ids), for 12-layer streams. The thesis code's
#: placements (cesipy/bsc-code src/utils.py ``get_coattention_placements``)
#: and its pretraining default, which is also vilbert-multi-task's
#: ``bert_base_6layer_6conect.json`` schedule (t 6..11, v 0..5).
COATTENTION_PRESETS = {
    'none': ([], []),
    'early': ([3, 4, 5], [3, 4, 5]),
    'middle': ([6, 7, 8], [6, 7, 8]),
    'late': ([9, 10, 11], [9, 10, 11]),
    'full': (list(range(12)), list(range(12))),
    'asymmetric': ([6, 7, 8, 9], [3, 5, 7, 9]),
    'optuna1': ([3, 6], [6, 8]),
    'optuna2': ([7, 9, 10, 11], [6, 7, 9, 10]),
    'thesis': ([6, 7, 8, 9, 10, 11], [0, 1, 2, 3, 4, 5]),
}
COATTENTION_PRESETS['baseline'] = COATTENTION_PRESETS['none']


def resolve_schedule(
        preset: Optional[str] = None,
        text_ids: Optional[Sequence[int]] = None,
        vision_ids: Optional[Sequence[int]] = None,
        num_text_layers: int = 12,
        num_vision_layers: int = 12) -> Tuple[List[int], List[int]]:
    """Check and return ``(text_ids, vision_ids)`` as lists of ints.

    Args:
        preset (str, optional): A name in :data:`COATTENTION_PRESETS`.
            Give either a preset or both id lists.
        text_ids (Sequence[int], optional): Text ids ("after i layers").
        vision_ids (Sequence[int], optional): Vision ids.
        num_text_layers (int): Layers of the text stream. Defaults to 12.
        num_vision_layers (int): Layers of the vision stream. Defaults to 12.

    Raises:
        ValueError: Unknown preset, both or neither of preset / ids, lists
            of different length, ids decreasing or outside
            ``0..num_layers``.
    """
    if preset is not None:
        if text_ids is not None or vision_ids is not None:
            raise ValueError('ViLBERT co-attention: give preset= or '
                             'text_ids= / vision_ids=, not both')
        if preset not in COATTENTION_PRESETS:
            raise ValueError(
                f'ViLBERT co-attention: unknown preset {preset!r}; known: '
                f'{", ".join(sorted(COATTENTION_PRESETS))}, or give '
                'text_ids= / vision_ids= lists')
        text_ids, vision_ids = COATTENTION_PRESETS[preset]
    if text_ids is None or vision_ids is None:
        raise ValueError('ViLBERT co-attention: give a preset or both '
                         'text_ids and vision_ids ([] and [] for none)')
    text_ids, vision_ids = list(map(int, text_ids)), list(map(int, vision_ids))
    if len(text_ids) != len(vision_ids):
        raise ValueError(
            f'ViLBERT co-attention: text_ids {text_ids} and vision_ids '
            f'{vision_ids} differ in length; block k sits after text layer '
            'text_ids[k] and vision layer vision_ids[k]')
    where = f' (preset {preset!r})' if preset else ''
    for name, ids, n in (('text_ids', text_ids, num_text_layers),
                         ('vision_ids', vision_ids, num_vision_layers)):
        bad = [i for i in ids if not 0 <= i <= n]
        if bad:
            raise ValueError(
                f'ViLBERT co-attention: {name}{where} has {bad}, outside '
                f'0..{n} for a {n}-layer stream; id i means "after i layers"')
        if any(b < a for a, b in zip(ids, ids[1:])):
            raise ValueError(f'ViLBERT co-attention: {name}{where} {ids} '
                             'must not decrease')
    return text_ids, vision_ids


def schedule_steps(text_ids: Sequence[int], vision_ids: Sequence[int],
                   num_text_layers: int,
                   num_vision_layers: int) -> List[Tuple[str, int]]:
    """The execution order as a list of ``(kind, index)`` with kind in
    ``'text'``, ``'vision'``, ``'coattn'``.

    Example:
        >>> schedule_steps([1], [0], 2, 2)
        [('text', 0), ('coattn', 0), ('vision', 0), ('vision', 1), ('text', 1)]
    """
    steps, t, v = [], 0, 0
    for k, (t_end, v_end) in enumerate(zip(text_ids, vision_ids)):
        steps += [('text', i) for i in range(t, t_end)]
        steps += [('vision', i) for i in range(v, v_end)]
        steps.append(('coattn', k))
        t, v = max(t, t_end), max(v, v_end)
    steps += [('vision', i) for i in range(v, num_vision_layers)]
    steps += [('text', i) for i in range(t, num_text_layers)]
    return steps
