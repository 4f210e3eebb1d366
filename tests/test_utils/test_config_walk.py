# Copyright (c) mmext contributors. All rights reserved.
"""mmext.utils.config: the one config walk, and the checks built on it."""
import warnings

import pytest
from mmengine.config import Config

from mmext.apis import ConfigError, check_config_types
from mmext.apis.report_generation import set_tokenizer_vocab
from mmext.hpo.space import config_keys
from mmext.testing import drop_pretrained
from mmext.utils import resolve_pretrained_paths
from mmext.utils.config import format_config_path, iter_config, walk_config
from mmext.utils.paths import MissingPretrainedError


def _tree():
    return dict(a=1, b=dict(c=[dict(d=2), 3], e=(4, dict(f=5))))


def test_order_paths_and_parents():
    tree = _tree()
    seen = list(iter_config(tree))
    assert seen[0] == ((), None, None, tree)
    assert [p for p, *_ in seen[1:]] == [('a', ), ('b', ), ('b', 'c'),
                                         ('b', 'c', 0), ('b', 'c', 0, 'd'),
                                         ('b', 'c', 1), ('b', 'e'),
                                         ('b', 'e', 0), ('b', 'e', 1),
                                         ('b', 'e', 1, 'f')]
    for path, parent, key, value in seen[1:]:
        assert parent[key] is value
        node = tree
        for k in path:
            node = node[k]
        assert node is value
    assert format_config_path(('b', 'c', 0, 'd')) == 'b.c.0.d'
    assert list(config_keys(
        tree, 'x.')) == ['x.' + format_config_path(p) for p, *_ in seen[1:]]


def test_changes_during_the_walk_are_followed():
    tree = dict(
        m=dict(init_cfg=dict(type='Pretrained', checkpoint='w')),
        n=dict(old=dict(k=1)))
    visited = []
    for path, parent, key, value in iter_config(tree):
        visited.append(path)
        if key == 'n':
            parent[key] = dict(new=dict(k=2))  # replaced: walk the new one
    assert ('n', 'new', 'k') in visited and ('n', 'old') not in visited
    dicts = []
    walk_config(tree, dicts.append)
    assert len(dicts) == 5 and dicts[0] is tree
    cfg = Config(
        dict(
            model=dict(
                backbone=dict(
                    init_cfg=dict(type='Pretrained', checkpoint='x')),
                head=[dict(
                    init_cfg=dict(type='Pretrained', checkpoint='y'))])))
    drop_pretrained(cfg)
    assert cfg.model.backbone.init_cfg is None
    assert cfg.model.head[0].init_cfg is None


def test_type_check_scopes_and_paths():
    cfg = Config(
        dict(
            model=dict(
                type='ImageClassifier',
                backbone=dict(type='ResNet'),
                init_cfg=[dict(type='Kaiming'),
                          dict(type='Constantt')]),
            train_dataloader=dict(
                dataset=dict(
                    type='CustomDataset',
                    pipeline=[
                        dict(type='LoadImageFromFile'),
                        dict(type='RandomFlipp')
                    ])),
            optim_wrapper=dict(
                optimizer=dict(type='SGD'),
                clip_grad=dict(type='not-a-registry-name'))))
    with pytest.raises(ConfigError) as e:
        check_config_types(cfg)
    lines = str(e.value).splitlines()
    assert len(lines) == 2  # clip_grad's type is an option, not checked
    assert lines[0].startswith("model.init_cfg.1: type 'Constantt' is not "
                               "registered in the 'weight initializer'")
    assert "did you mean 'Constant'?" in lines[0]
    assert lines[1].startswith(
        "train_dataloader.dataset.pipeline.1: type 'RandomFlipp' is not "
        "registered in the 'transform' registry")


def test_weight_paths_in_lists_are_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('MMEXT_PRETRAIN_DIR', raising=False)
    (tmp_path / 'pretrain_pth').mkdir()
    (tmp_path / 'pretrain_pth/a.pth').write_bytes(b'x')
    cfg = Config(
        dict(
            model=dict(
                init_cfg=[
                    dict(type='Pretrained', checkpoint='pretrain_pth/a.pth'),
                    dict(type='Pretrained', checkpoint='pretrain_pth/b.pth')
                ],
                sizes=('pretrain_pth/in_a_tuple.pth', ))))
    with pytest.raises(MissingPretrainedError) as e:
        resolve_pretrained_paths(cfg)
    assert str(e.value).startswith(
        "model.init_cfg.1.checkpoint = 'pretrain_pth/b.pth' not found")
    assert len(str(e.value).splitlines()) == 1  # tuples are left alone
    assert cfg.model.init_cfg[0].checkpoint == str(tmp_path /
                                                   'pretrain_pth/a.pth')


def test_tokenizer_vocab_set_once_per_tokenizer():
    cfg = dict(
        model=dict(
            tokenizer=dict(
                type='T', dataset='iu_xray', tokenizer=dict(inner=1))),
        test_dataloader=dict(
            dataset=[dict(tokenizer=dict(type='T', dataset='mimic_cxr'))]))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        n = set_tokenizer_vocab(
            cfg, ['a', 'b'], trained_with=dict(dataset='iu_xray'))
    assert n == 2
    assert cfg['model']['tokenizer']['vocab'] == ['a', 'b']
    assert 'vocab' not in cfg['model']['tokenizer']['tokenizer']
    assert cfg['test_dataloader']['dataset'][0]['tokenizer']['vocab'] == [
        'a', 'b'
    ]
    assert [str(x.message).split('=')[0]
            for x in w] == ['cfg.test_dataloader.dataset.0.tokenizer.dataset']
