# Copyright (c) mmext contributors. All rights reserved.
"""ViLBERTClassifier: the three task losses equal their formulas, fusion
options, the shipped fine-tuning configs."""

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.structures import DataSample

from mmext.registry import MODELS
from mmext.testing.vilbert import TINY_VIT, fixed_batch
from tests.conftest import ROOT


def _model(bert_dir, task, num_classes, **kwargs):
    vilbert = dict(
        type='ViLBERT',
        text=dict(folder=str(bert_dir)),
        visual=dict(
            type='PatchVisualStream', backbone=TINY_VIT, embed_dims=32),
        coattention=dict(
            text_ids=[1], vision_ids=[1], bi_dims=16, num_heads=2),
        pooler='cls')
    return MODELS.build(
        dict(
            type='ViLBERTClassifier',
            vilbert=vilbert,
            task=task,
            num_classes=num_classes,
            hidden_dims=8,
            **kwargs))


def _samples(labels):
    return [DataSample().set_gt_label(y) for y in labels]


@pytest.mark.parametrize('task,num_classes,labels', [
    ('binary', 1, [0, 1, 1, 0]),
    ('multiclass', 5, [4, 0, 2, 2]),
    ('multilabel', 23, [[0, 3], [], [22], [1, 2, 5]]),
])
def test_task_losses_match_their_formulas(bert_dir, task, num_classes, labels):
    torch.manual_seed(0)
    model = _model(
        bert_dir,
        task,
        num_classes,
        pos_weight=2.0 if task != 'multiclass' else None).eval()
    inputs = fixed_batch(vocab=90)
    logits = model(inputs)
    assert logits.shape == (4, num_classes)
    loss = model.loss(inputs, _samples(labels))['loss']
    if task == 'multiclass':
        expected = F.cross_entropy(logits, torch.tensor(labels))
    elif task == 'binary':
        expected = F.binary_cross_entropy_with_logits(
            logits,
            torch.tensor(labels, dtype=torch.float)[:, None],
            pos_weight=torch.tensor(2.0))
    else:
        target = torch.zeros(4, num_classes)
        for row, y in zip(target, labels):
            row[torch.as_tensor(y, dtype=torch.long)] = 1
        weight = torch.tensor(2.0)
        expected = F.binary_cross_entropy_with_logits(
            logits, target, pos_weight=weight)
    assert torch.allclose(loss, expected, atol=1e-6)
    preds = model.predict(inputs, _samples(labels))
    score = preds[0].pred_score
    if task == 'multiclass':
        assert torch.allclose(score.sum(), torch.tensor(1.0), atol=1e-5)
    else:
        assert torch.allclose(score, logits[0].sigmoid(), atol=1e-6)


def test_fusion_options(bert_dir):
    concat = _model(bert_dir, 'binary', 1, fusion='concat')
    assert concat.head[0].in_features == 64  # two 32-d CLS tokens
    for name in ('product', 'hadamard', 'mul'):
        model = _model(bert_dir, 'binary', 1, fusion=name)
        assert model.vilbert.fusion == 'mul'
        assert model.head[0].in_features == 32
    with pytest.raises(ValueError, match='fusion'):
        _model(bert_dir, 'binary', 1, fusion='hardamard')
    with pytest.raises(ValueError, match='num_classes=1'):
        _model(bert_dir, 'binary', 2)


def test_every_finetune_config_builds_its_pieces():
    """The shipped task configs name registered types and metrics."""
    from mmext.apis import check_config_types
    for path in sorted((ROOT / 'configs/vilbert').glob('vilbert-cls_*.py')):
        cfg = Config.fromfile(str(path))
        check_config_types(cfg)
        assert cfg.custom_hooks[0].type == 'EarlyStoppingHook'
        assert cfg.default_hooks.checkpoint.save_best == \
            cfg.custom_hooks[0].monitor
