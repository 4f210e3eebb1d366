# Copyright (c) mmext contributors. All rights reserved.
"""Co-attention placement: the thesis mapping, the baseline, and overrides
that reach the ViLBERT model."""

import optuna
import pytest
from mmengine.config import Config

from mmext.hpo import apply_overrides, coattention_layers, load_space
from tests.conftest import ROOT

# (n, t_center, t_spread, v_center, v_spread) -> (text ids, vision ids),
# computed with cesipy/bsc-code experiment_tracker.get_biattentions
# (scipy norm.ppf) before its "fewer than 2 ids" pruning
THESIS = [
    [[2, 6.0, 1.0, 6.0, 1.0], [6], [6]],
    [[3, 6.0, 2.0, 4.0, 1.0], [5, 6, 7], [3, 4, 5]],
    [[5, 9.5, 3.0, 2.5, 1.5], [7, 8, 10, 11], [1, 2, 3, 4]],
    [[8, 10.0, 4.0, 2.0, 1.0], [5, 7, 8], [1, 2, 3]],
    [[4, 2.0, 1.0, 10.0, 4.0], [1, 2, 3], [7, 9, 11]],
    [[6, 5.5, 1.2, 5.5, 0.3], [4, 5], [5, 6]],
]


@pytest.mark.parametrize('args,text,vision', THESIS)
def test_thesis_mapping(args, text, vision):
    assert coattention_layers(*args) == (text, vision)


def test_baseline_and_stream_depths():
    assert coattention_layers(0, 6, 2, 6, 2) == ([], [])
    # the 6-layer vision stream clips (and so merges) the deepest ids
    assert coattention_layers(4, 8.0, 3.0, 5.0, 3.0,
                              12) == ([5, 7, 9, 11], [2, 4, 6, 8])
    assert coattention_layers(4, 8.0, 3.0, 5.0, 3.0,
                              (12, 6)) == ([5, 7, 9], [2, 4, 5])


def test_space_reaches_the_model(tmp_path):
    """Placements of configs/hpo/vilbert_coattention_space.py are valid for
    the model's own schedule check, and the override keys build a model
    with exactly those blocks (the thesis' trials set fields the model
    ignored)."""
    from mmengine.registry import DefaultScope

    from mmext.models.multimodal.vilbert.schedule import resolve_schedule
    from mmext.registry import MODELS
    from mmext.testing.bert import make_bert_folder
    space = load_space(str(ROOT / 'configs/hpo/vilbert_coattention_space.py'))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(0))
    vit = Config.fromfile(
        ROOT / 'configs/vilbert/'
        'vilbert_vit-base-p16-bert-base_1xb20-pretrain_cc.py')
    seen_baseline = False
    for _ in range(60):
        ov = space.sample(study.ask(), vit)
        t, v = ov['model.coattention.text_ids'], ov[
            'model.coattention.vision_ids']
        assert resolve_schedule(None, t, v, 12, 12) == (t, v)
        seen_baseline |= t == []
    assert seen_baseline
    cfg = Config.fromfile(
        ROOT / 'configs/vilbert/vilbert_tiny_1xb4-pretrain_tiny-cc.py')
    cfg.model.text.folder = str(make_bert_folder(tmp_path / 'bert'))
    for t, v in (([0, 2], [1, 2]), ([], [])):
        trial_cfg = apply_overrides(
            cfg, {
                'model.coattention.preset': None,
                'model.coattention.text_ids': t,
                'model.coattention.vision_ids': v
            })
        with DefaultScope.overwrite_default_scope('mmext'):
            model = MODELS.build(trial_cfg.model)
        assert (model.text_ids, model.vision_ids) == (t, v)
        assert len(model.coattn) == len(t)
