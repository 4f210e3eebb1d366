# Copyright (c) mmext contributors. All rights reserved.
"""Fuzz: generated space files (wrong types, bad ranges, unknown
distributions, odd keys) load as a usable space or raise one-line
``SpaceError`` naming the file; never another exception type."""
import math

import optuna
from hypothesis import given, settings
from hypothesis import strategies as st

from mmext.hpo.space import SearchSpace, SpaceError, load_space

optuna.logging.set_verbosity(optuna.logging.WARNING)

_number = st.one_of(
    st.integers(-5, 5), st.floats(-10, 10),
    st.sampled_from([0, 1e-4, 0.5, 1, math.inf, -math.inf, math.nan]))
_literal = st.one_of(st.none(), st.booleans(), _number, st.text(max_size=6),
                     st.lists(st.integers(-3, 3), max_size=3))
_key = st.one_of(
    st.sampled_from(['optim_wrapper.optimizer.lr', 'model.head.num_classes']),
    st.sampled_from([
        'optim_wrapper.optimizer.lr', 'model.head.num_classes', 'a.0.b', '',
        'a..b', '.a', 'a b', 'x'
    ]), st.integers(0, 3), st.none())


@st.composite
def _distribution(draw):
    kind = draw(
        st.sampled_from(['FloatDistribution', 'IntDistribution'] * 2 + [
            'CategoricalDistribution', 'UniformDistribution',
            'NoSuchDistribution', 'literal', 'string'
        ]))
    if kind == 'literal':
        return repr(draw(_literal))
    if kind == 'string':
        return repr(f'loguniform({draw(_number)}, {draw(_number)})')
    if kind == 'CategoricalDistribution':
        return f'{kind}({draw(st.lists(_literal, max_size=3))!r})'
    low = draw(_number)
    high = low + draw(_number) if draw(st.booleans()) else draw(_number)
    if kind == 'IntDistribution':
        low, high = (int(v) if math.isfinite(v) else v for v in (low, high))
    args = [repr(low), repr(high)]
    if draw(st.booleans()):
        args.append(f'log={draw(st.booleans())}')
    if draw(st.booleans()):
        args.append(f'step={draw(_number)!r}')
    return f'{kind}({", ".join(args)})'


_rarely = st.integers(0, 4).map(lambda x: x == 4)


@st.composite
def _valid_distribution(draw):
    low = draw(st.floats(1e-5, 1.0))
    high = low * draw(st.floats(1.5, 100.0))
    return draw(
        st.sampled_from([
            f'FloatDistribution({low!r}, {high!r}, log=True)',
            f'IntDistribution({int(low * 10)}, {int(high * 10) + 1})',
            f'CategoricalDistribution([{low!r}, {high!r}])'
        ]))


@st.composite
def _space_file(draw):
    lines = ['from math import inf, nan', 'from optuna.distributions import *']
    shape = draw(
        st.sampled_from(['dict'] * 4 + ['list', 'literal', 'missing']))
    valid = draw(st.booleans())
    entries = [(draw(_key),
                draw(_valid_distribution() if valid else _distribution()))
               for _ in range(draw(st.integers(0, 3)))]
    if shape == 'dict':
        lines.append('space = {' + ', '.join(f'{k!r}: {v}'
                                             for k, v in entries) + '}')
    elif shape == 'list':
        lines.append('space = [' + ', '.join(v for _, v in entries) + ']')
    elif shape == 'literal':
        lines.append(f'space = {draw(_literal)!r}')
    for name in ('fixed', 'metric', 'direction', 'new_keys', 'overrides'):
        if draw(_rarely):
            lines.append(f'{name} = {draw(_literal)!r}')
    if draw(st.booleans()):
        lines.append('def overrides(trial):\n    return {"train_cfg.'
                     'max_epochs": trial.suggest_int("e", 1, 3)}')
    if draw(_rarely):  # a syntax error somewhere
        lines.insert(draw(st.integers(2, len(lines))), 'space = {')
    return '\n'.join(lines) + '\n'


@settings(max_examples=80)
@given(text=_space_file())
def test_generated_space_files(tmp_path_factory, text):
    path = str(tmp_path_factory.mktemp('fuzz') / 'space.py')
    with open(path, 'w') as f:
        f.write(text)
    try:
        space = load_space(path)
    except SpaceError as e:
        msg = str(e)
        assert '\n' not in msg and path in msg, msg
        return
    assert isinstance(space, SearchSpace)
    # a space that loads can be sampled (or names the trial and file)
    trial = optuna.create_study().ask()
    try:
        overrides = space.sample(trial)
    except SpaceError as e:
        assert '\n' not in str(e) and path in str(e)
        return
    assert set(space.space) <= set(overrides)
