# Copyright (c) mmext contributors. All rights reserved.
"""Co-attention placement: presets, "after i layers", refused schedules."""
import pytest

from mmext.models.multimodal.vilbert import (COATTENTION_PRESETS,
                                             resolve_schedule, schedule_steps)


def test_presets_are_the_documented_schedules():
    # (text, vision) as cesipy/bsc-code src/utils.py and the thesis default
    expected = {
        'none': ([], []),
        'baseline': ([], []),
        'early': ([3, 4, 5], [3, 4, 5]),
        'middle': ([6, 7, 8], [6, 7, 8]),
        'late': ([9, 10, 11], [9, 10, 11]),
        'full': (list(range(12)), list(range(12))),
        'asymmetric': ([6, 7, 8, 9], [3, 5, 7, 9]),
        'optuna1': ([3, 6], [6, 8]),
        'optuna2': ([7, 9, 10, 11], [6, 7, 9, 10]),
        'thesis': ([6, 7, 8, 9, 10, 11], [0, 1, 2, 3, 4, 5]),
    }
    assert COATTENTION_PRESETS == expected
    for name, pair in expected.items():
        assert resolve_schedule(name) == pair


def test_after_i_layers_order():
    # block k after text layer t_k and vision layer v_k (0 = before any)
    steps = schedule_steps([2, 3], [0, 1], 4, 2)
    assert steps == [('text', 0), ('text', 1), ('coattn', 0), ('text', 2),
                     ('vision', 0), ('coattn', 1), ('vision', 1), ('text', 3)]
    # the thesis schedule: 6 text layers before the first block, every
    # layer exactly once
    steps = schedule_steps(*resolve_schedule('thesis'), 12, 12)
    assert steps.index(('coattn', 0)) == 6
    assert steps[:6] == [('text', i) for i in range(6)]
    for kind in ('text', 'vision'):
        assert [i for k, i in steps if k == kind] == list(range(12))
    assert [i for k, i in steps if k == 'coattn'] == list(range(6))
    # zero blocks: the baseline runs both streams alone
    assert schedule_steps([], [], 2, 1) == [('vision', 0), ('text', 0),
                                            ('text', 1)]
    # ids equal to the depth put a block after the last layer
    assert schedule_steps([2], [1], 2, 1)[-1] == ('coattn', 0)


@pytest.mark.parametrize('kwargs, match', [
    (dict(preset='middel'), 'unknown preset'),
    (dict(text_ids=[1, 2], vision_ids=[1]), 'differ in length'),
    (dict(text_ids=[13], vision_ids=[1]), r'outside 0\.\.12'),
    (dict(text_ids=[3, 2], vision_ids=[1, 2]), 'must not decrease'),
    (dict(text_ids=[1]), 'both'),
    (dict(preset='early', text_ids=[1], vision_ids=[1]), 'not both'),
])
def test_bad_schedules_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        resolve_schedule(**kwargs)


def test_preset_too_deep_for_a_small_model():
    with pytest.raises(ValueError, match="preset 'late'.*2-layer"):
        resolve_schedule('late', num_text_layers=2, num_vision_layers=2)
