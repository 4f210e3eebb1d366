# Copyright (c) mmext contributors. All rights reserved.
"""Every shipped space file (configs/hpo/*.py) fits every config it lists:
sampled trials set only keys the config has (or declared new keys whose
parent it has), the objective metric is one its validation reports, and
the ViLBERT spaces resolve their keys and depths from the config. No
training."""
import re

import optuna
import pytest
from mmengine.config import Config

from mmext.hpo import apply_overrides, check_metrics, get_key, load_space
from mmext.hpo.coattention import stream_depths, vilbert_key
from tests.conftest import ROOT

SPACES = sorted((ROOT / 'configs' / 'hpo').glob('*.py'))
PAIRS = [(sp, cfg) for sp in SPACES for cfg in load_space(str(sp)).configs]


def _trials(space, cfg, n=6):
    """Overrides of ``n`` trials of a real (in-memory) study."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(0))
    return [space.sample(study.ask(), cfg) for _ in range(n)]


def test_every_space_lists_existing_configs():
    assert {sp.name
            for sp in SPACES} >= {
                'resnet18_tiny_space.py', 'resnet18_flowers17_space.py',
                'vilbert_hparams_space.py', 'vilbert_coattention_space.py'
            }
    for sp in SPACES:
        space = load_space(str(sp))
        assert space.configs, f'{sp.name}: no `configs` list'
        for cfg in space.configs:
            assert (ROOT / cfg).is_file(), f'{sp.name}: {cfg} not found'
        # every config the file's comments name is one it lists
        named = set(re.findall(r'configs/[\w/.-]+?\.py', sp.read_text()))
        named -= {f'configs/hpo/{sp.name}'}
        assert named <= set(space.configs), named - set(space.configs)


@pytest.mark.parametrize(
    'space_file, config', PAIRS, ids=[f'{s.stem}:{c}' for s, c in PAIRS])
def test_space_fits_config(space_file, config):
    space = load_space(str(space_file))
    cfg = Config.fromfile(ROOT / config)
    # the metric (the config's entry, else the space's) is a validation key
    metric = space.metric_for(config)
    check_metrics(cfg, [metric], config, space_file.name)
    for overrides in _trials(space, cfg):
        assert overrides
        trial_cfg = apply_overrides(cfg, overrides)
        for key, value in overrides.items():
            if key not in space.new_keys:
                get_key(cfg, key)  # the base config has it
            else:
                get_key(cfg, key.rpartition('.')[0])  # its parent
            got = get_key(trial_cfg, key)
            assert got == value or (isinstance(got, (list, tuple))
                                    and list(got) == list(value)), key


VILBERT = [(cfg, sp) for sp, cfg in PAIRS if sp.stem.startswith('vilbert')]


@pytest.mark.parametrize('config, space_file', VILBERT)
def test_vilbert_spaces_follow_the_model(config, space_file):
    """Keys under model.coattention (ViLBERT) or model.vilbert.coattention
    (ViLBERTClassifier); hparams: the schedule keeps its shape; placement:
    layer ids inside the config's streams."""
    from mmext.models.multimodal.vilbert.schedule import resolve_schedule
    cfg = Config.fromfile(ROOT / config)
    root = vilbert_key(cfg)
    assert root == ('model.vilbert'
                    if cfg.model.type == 'ViLBERTClassifier' else 'model')
    depths = stream_depths(cfg)
    for ov in _trials(load_space(str(space_file)), cfg, n=10):
        model_keys = [k for k in ov if k.startswith('model.')]
        assert model_keys and all(
            k.startswith(f'{root}.coattention.') for k in model_keys)
        if 'hparams' in space_file.stem:
            epochs, old = ov['train_cfg.max_epochs'], cfg.train_cfg.max_epochs
            for i, sched in enumerate(cfg.param_scheduler):
                assert ov[f'param_scheduler.{i}.end'] / epochs == \
                    pytest.approx(sched.end / old)
        else:
            t, v = (ov[f'{root}.coattention.text_ids'],
                    ov[f'{root}.coattention.vision_ids'])
            assert resolve_schedule(None, t, v, *depths) == (t, v)


def test_stream_depths(tmp_path):
    from mmext.testing.bert import make_bert_folder
    vit = Config.fromfile(
        ROOT / 'configs/vilbert/'
        'vilbert_vit-base-p16-bert-base_1xb20-pretrain_cc.py')
    regions = Config.fromfile(
        ROOT / 'configs/vilbert/'
        'vilbert-cls_regions-bert-base_1xb20-ft_hateful-memes.py')
    tiny = Config.fromfile(
        ROOT / 'configs/vilbert/vilbert_tiny_1xb4-pretrain_tiny-cc.py')
    assert stream_depths(vit) == (12, 12)
    assert stream_depths(regions) == (12, 6)
    tiny.model.text.folder = str(make_bert_folder(tmp_path / 'bert'))
    assert stream_depths(tiny) == (2, 2)  # the folder's and the arch's
    with pytest.raises(ValueError, match='neither model.coattention'):
        vilbert_key(
            Config.fromfile(ROOT /
                            'configs/tiny/resnet18_1xb8-scratch_tiny-64px.py'))


def test_metric_from_configs_entry(tmp_path):
    """tools/hpo.py without --metric takes the config's `configs` entry."""
    from mmext.hpo import resolve_objective
    space = load_space(str(ROOT / 'configs/hpo/vilbert_hparams_space.py'))
    hm = ('configs/vilbert/'
          'vilbert-cls_tiny_1xb4-ft_tiny-hateful-memes.py')
    assert resolve_objective(space, config=hm)[0] == ['binary/auroc']
    assert resolve_objective(
        space, config='vilbert_tiny_1xb4-pretrain_tiny-cc.py')[0] == [
            'pretrain/itm_accuracy'
        ]
    assert resolve_objective(
        space, ['binary/f1-macro'], config=hm)[0] == ['binary/f1-macro']
