# Copyright (c) mmext contributors. All rights reserved.
"""Alignment figures (named sides, >= 800 px, no cut labels) and the
measurement mode of the loaders (ITM swaps / masking off, what differs)."""
import pytest
from mmengine.config import Config

from mmext.analysis import (heatmap_figure, input_differences,
                            measurement_loader_cfg, per_layer_figure,
                            side_labels, texts_outside)
from mmext.analysis.alignment import _check_same_samples
from mmext.analysis.alignment_plots import DPI
from tests.conftest import ROOT

LONG_CFG = ('configs/vilbert/'
            'vilbert_vit-base-p16-bert-base_1xb20-pretrain_cc_a_long_name.py')


def _result(la, lb, config2=None, ck1='runs/a/epoch_7.pth', ck2=None):
    recs = [
        dict(layer_a=a, layer_b=b, linear_cka=(i + j) / 100, mutual_knn=.5)
        for i, a in enumerate(la) for j, b in enumerate(lb)
    ]
    return dict(
        config=LONG_CFG,
        checkpoint=ck1,
        config2=config2,
        checkpoint2=ck2,
        pooling='auto',
        num_samples=64,
        layers_a=la,
        layers_b=lb,
        metrics=['linear_cka', 'mutual_knn'],
        records=recs)


def _texts(fig):
    return ' '.join(t.get_text().replace('\n', ' ')
                    for t in fig.findobj(lambda a: hasattr(a, 'get_text')))


@pytest.mark.parametrize('make', [heatmap_figure, per_layer_figure])
def test_figures_name_both_sides_and_cut_nothing(make):
    import matplotlib.pyplot as plt
    la = [f'text.{i}' for i in range(12)] + ['coattn.0.text']
    lb = [f'vision.{i}' for i in range(12)] + ['coattn.0.vision']
    res = _result(la, lb)
    fig = make(res, 'linear_cka') if make is heatmap_figure else make(res)
    try:
        assert fig.get_size_inches()[0] * DPI >= 800
        assert texts_outside(fig) == []
        text = _texts(fig)
        name_a, name_b = side_labels(res)
        assert name_a != name_b
        assert name_a in text and name_b in text
        assert name_a.endswith('text') and name_b.endswith('vision')
        # every layer of both sides is labelled
        assert all(n in text for n in la + lb)
    finally:
        plt.close(fig)


def test_side_labels():
    same = _result(['l1'], ['l1'], LONG_CFG, 'runs/a/ep1.pth',
                   'runs/b/ep1.pth')
    assert side_labels(same) == ('a: a/ep1.pth', 'b: b/ep1.pth')
    twice = _result(['l1'], ['l1'], LONG_CFG, 'x/ep1.pth', 'x/ep1.pth')
    assert side_labels(twice) == ('a: x/ep1.pth (model 1)',
                                  'b: x/ep1.pth (model 2)')
    other = _result(['l1'], ['l1'], 'configs/x/vit.py', None, None)
    assert side_labels(other) == ('a: vilbert_vit-base-p16-bert-base_1xb20-'
                                  'pretrain_cc_a_long_name', 'b: vit')
    self_map = _result(['l1', 'l2'], ['l1', 'l2'])
    assert side_labels(self_map) == ('a: a/epoch_7.pth',
                                     'b: a/epoch_7.pth (same layers)')


def test_measurement_mode_switches_randomness_off():
    cfg = Config.fromfile(
        ROOT / 'configs/vilbert/vilbert_tiny_1xb4-pretrain_tiny-cc.py')
    loader, changes = measurement_loader_cfg(cfg.val_dataloader, 2)
    assert loader['collate_fn']['itm_prob'] == 0
    assert loader['batch_size'] == 2 and not loader['sampler']['shuffle']
    tok = [
        t for t in loader['dataset']['pipeline']
        if t['type'] == 'TokenizeCaption'
    ]
    assert tok[0]['mlm_prob'] == 0
    assert changes == [
        'vilbert_collate.itm_prob=0', 'TokenizeCaption.mlm_prob=0'
    ]
    assert cfg.val_dataloader.collate_fn.itm_prob == 0.5  # a copy
    train, changes = measurement_loader_cfg(cfg.train_dataloader)
    assert 'RandomPatchMask.ratio=0' in changes
    assert 'RandomFlip.prob=0' in changes
    assert 'RandomResizedCrop left on (no switch known)' in changes


def test_same_config_different_inputs_names_them():
    ids = ['a.jpg', 'b.jpg']
    d1 = [dict(img='1', input_ids='2'), dict(img='3', input_ids='4')]
    d2 = [dict(img='1', input_ids='2'), dict(img='3', input_ids='9')]
    assert input_differences(ids, d1, d2) == ['#1 (b.jpg): input_ids']
    with pytest.raises(
            ValueError, match=r'#1 \(b.jpg\): input_ids.*'
            'RandomResizedCrop'):
        _check_same_samples(ids, ids, 'val', dict(digests=d1),
                            dict(digests=d2), True,
                            ['RandomResizedCrop left on (no switch known)'])
    # two configs may differ on purpose (e.g. image size): reported only
    assert _check_same_samples(ids, ids, 'val', dict(digests=d1),
                               dict(digests=d2), False,
                               []) == ['#1 (b.jpg): input_ids']
    with pytest.raises(
            ValueError, match='first difference at #1: b.jpg vs '
            'c.jpg'):
        _check_same_samples(ids, ['a.jpg', 'c.jpg'], 'val', dict(digests=d1),
                            dict(digests=d1), True, [])


def test_texts_outside_sees_a_cut_title():
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(2.9, 2))  # the old ~290 px heat map
    ax.set_title('a: ' + LONG_CFG)
    try:
        assert 'a: ' + LONG_CFG in texts_outside(fig)
    finally:
        plt.close(fig)
