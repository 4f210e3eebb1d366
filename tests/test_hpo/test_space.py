# Copyright (c) mmext contributors. All rights reserved.
"""Space files and the refusal of keys no model reads."""

import pytest
from mmengine.config import Config

from mmext.apis import ConfigError
from mmext.hpo import check_overrides, get_key, load_space, search
from mmext.hpo.space import SpaceError
from tests.conftest import ROOT

TINY = ROOT / 'configs/tiny/resnet18_1xb8-scratch_tiny-64px.py'


def _space(tmp_path, text):
    path = tmp_path / 'space.py'
    path.write_text(text)
    return str(path)


def test_get_key_and_check_overrides():
    cfg = Config.fromfile(TINY)
    assert get_key(cfg, 'optim_wrapper.optimizer.lr') == 0.05
    assert get_key(cfg, 'train_pipeline.1.prob') == 0.5
    check_overrides(cfg, {
        'model.head.num_classes': 3,
        'train_pipeline.1.prob': 0.1
    })
    with pytest.raises(ConfigError) as e:
        check_overrides(cfg, {
            'model.head.dropout': 0.1,
            'optim_wrapper.optimizer.lrr': 1.0
        }, 's.py')
    msg = str(e.value)
    assert "s.py: 'model.head.dropout' is not a key" in msg
    assert "did you mean ['optim_wrapper.optimizer.lr'" in msg
    # declared new keys need their parent
    check_overrides(
        cfg, {'model.head.dropout': 0.1}, new_keys=['model.head.dropout'])
    with pytest.raises(ConfigError):
        check_overrides(cfg, {'model.neck2.x': 1}, new_keys=['model.neck2.x'])


def test_load_space_validates(tmp_path):
    s = load_space(
        _space(tmp_path,
               ('from optuna.distributions import FloatDistribution as F\n'
                "space = {'a.b': F(0.1, 1.0)}\nmetric = 'acc'\n")))
    assert s.metric == 'acc' and list(s.space) == ['a.b']
    with pytest.raises(SpaceError, match='not an Optuna distribution'):
        load_space(_space(tmp_path, "space = {'a.b': [1, 2]}\n"))
    with pytest.raises(SpaceError, match='nothing to search'):
        load_space(_space(tmp_path, 'x = 1\n'))
    with pytest.raises(FileNotFoundError):
        load_space(str(tmp_path / 'missing.py'))


def test_search_refuses_before_anything_runs(tmp_path):
    space = _space(tmp_path,
                   ('from optuna.distributions import FloatDistribution as F\n'
                    "space = {'optim_wrapper.optimizer.lr': F(0.01, 0.1)}\n"
                    'def overrides(trial):\n'
                    "    if trial.suggest_int('depth', 0, 3) == 3:\n"
                    "        return {'model.backbone.depthh': 50}\n"
                    '    return {}\n'))
    work = tmp_path / 'work'
    with pytest.raises(ConfigError, match='model.backbone.depthh'):
        search(str(TINY), space, str(work), metrics=['accuracy/top1'])
    assert not work.exists()  # no storage, no trial directory


def test_search_refuses_missing_data_before_anything_runs(
        tmp_path, monkeypatch):
    space = _space(tmp_path,
                   ('from optuna.distributions import FloatDistribution as F\n'
                    "space = {'optim_wrapper.optimizer.lr': F(0.01, 0.1)}\n"))
    monkeypatch.chdir(tmp_path)  # no data/tiny here
    with pytest.raises(FileNotFoundError, match='data/tiny'):
        search(str(TINY), space, 'work', metrics=['accuracy/top1'])
    assert not (tmp_path / 'work').exists()


@pytest.mark.parametrize(
    'text, match',
    [('space = [1, 2]\n', r'space.py: `space` is a list, not a dict'),
     ('x = 1\nspace = {\n  "a": 1\n  "b": 2}\n',
      r'space.py line 3: syntax error \(.*\); fix the space file$'),
     ('x = 1\nimport no_such_module_xyz\n',
      r"space.py line 2: ModuleNotFoundError: No module named "
      r"'no_such_module_xyz'"),
     ('from optuna.distributions import FloatDistribution as F\n'
      'space = {"a.b": F(1.0, 0.5)}\n', r'space.py line 2: ValueError: '),
     ("fixed = ['a']\nspace = {}\n", r'`fixed` is a list'),
     ("new_keys = 'model.x'\ndef overrides(t): return {}\n",
      r"`new_keys` is 'model.x'; give a list"),
     ('overrides = 3\n', r'`overrides` is 3, not a function'),
     ("metric = 7\ndef overrides(t): return {}\n", r'`metric` is 7'),
     ("direction = 'up'\ndef overrides(t): return {}\n",
      r"`direction` 'up' is not one of \['maximize', 'minimize'\]"),
     ("space = {3: None}\n", r'space key 3 is not a dotted config key'),
     ("space = {'a b': None}\n", r"space key 'a b' is not a dotted"),
     ("space = {'lr': 'loguniform(1e-4, 1e-1)'}\n",
      r"space\['lr'\] is 'loguniform\(1e-4, 1e-1\)', not an Optuna")])
def test_space_file_problems_are_one_line(tmp_path, text, match):
    path = _space(tmp_path, text)
    with pytest.raises(SpaceError, match=match) as e:
        load_space(path)
    assert '\n' not in str(e.value) and path in str(e.value)


def test_space_file_is_checked_as_a_regular_text_file(tmp_path):
    import os
    fifo = tmp_path / 'fifo.py'
    os.mkfifo(fifo)
    with pytest.raises(SpaceError, match='is a FIFO'):
        load_space(str(fifo))  # returns at once, never blocks
    bad = tmp_path / 'latin1.py'
    bad.write_bytes(b'# caf\xe9\nx = 1\n')
    with pytest.raises(SpaceError, match='latin1.py is not utf-8 text'):
        load_space(str(bad))


RAISING = ('from optuna.distributions import FloatDistribution as F\n'
           "space = {'optim_wrapper.optimizer.lr': F(0.01, 0.1)}\n"
           'def overrides(trial):\n'
           '    if trial.number % EVERY == 0:\n'
           "        raise ValueError('planted')\n"
           "    return {'train_cfg.max_epochs': 1}\n")


def test_overrides_that_raise(tmp_path):
    import optuna

    from mmext.hpo import probe_overrides
    path = _space(tmp_path, RAISING.replace('EVERY', '2'))
    space = load_space(path)
    study = optuna.create_study()
    with pytest.raises(SpaceError) as e:
        space.sample(study.ask())
    assert str(e.value) == (f'{path}: overrides(trial 0) raised '
                            'ValueError: planted')
    assert space.sample(study.ask())['train_cfg.max_epochs'] == 1
    cfg = Config.fromfile(TINY)
    probe_overrides(space, cfg)  # some trials can train: the study runs
    always = load_space(_space(tmp_path, RAISING.replace('EVERY', '1')))
    with pytest.raises(SpaceError, match='in all 16 probe trials'):
        probe_overrides(always, cfg)
    notdict = load_space(_space(tmp_path, 'def overrides(t): return [1]\n'))
    with pytest.raises(
            SpaceError, match=r'overrides\(trial 0\) returned '
            'list, not a dict'):
        notdict.sample(optuna.create_study().ask())
