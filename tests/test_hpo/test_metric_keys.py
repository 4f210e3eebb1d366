# Copyright (c) mmext contributors. All rights reserved.
"""The metric keys listed before training are the keys validation gives,
and an unknown objective metric is refused with the nearest keys."""
import fnmatch

import pytest
import torch
from mmengine.config import Config

from mmext.apis import ConfigError
from mmext.hpo.metric_keys import check_metrics, metric_keys, validation_keys
from mmext.registry import METRICS
from mmext.utils import register_all_modules
from tests.conftest import ROOT

TINY = ROOT / 'configs/tiny/resnet18_1xb8-scratch_tiny-64px.py'


def _scores(n=6, c=4):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, c, generator=g).softmax(-1)


def _single(n=6, c=4):
    return [
        dict(pred_score=s, gt_label=torch.tensor([i % c]))
        for i, s in enumerate(_scores(n, c))
    ]


def _multi(n=6, c=4):
    return [
        dict(
            pred_score=s,
            gt_score=torch.tensor([(i + j) % 2 for j in range(c)]).float(),
            gt_label=torch.tensor([j for j in range(c) if (i + j) % 2]))
        for i, s in enumerate(_scores(n, c))
    ]


def _binary(n=6):
    return [
        dict(pred_score=torch.tensor([p]), gt_label=torch.tensor([i % 2]))
        for i, p in enumerate(torch.linspace(0.1, 0.9, n).tolist())
    ]


def _reports():
    return [
        dict(
            pred_report='the heart is enlarged .',
            gt_report='there is cardiomegaly .'),
        dict(pred_report='lungs are clear .', gt_report='no effusion .')
    ]


def _pretrain():
    return [
        dict(itm_label=1, itm_score=0.9, mlm_count=3, mlm_hits=2),
        dict(itm_label=0, itm_score=0.7)
    ]


CASES = [
    (dict(type='Accuracy'), _single),
    (dict(type='Accuracy', topk=(1, 2)), _single),
    (dict(type='Accuracy', topk=(1, 3), thrs=(None, 0.3)), _single),
    (dict(type='Accuracy', prefix='acc'), _single),
    (dict(type='SingleLabelMetric'), _single),
    (dict(
        type='SingleLabelMetric',
        items=('f1-score', 'support'),
        average='micro'), _single),
    (dict(type='SingleLabelMetric', thrs=(None, 0.4)), _single),
    (dict(type='SingleLabelMetric', average=None), _single),
    (dict(type='MultiLabelMetric'), _multi),
    (dict(type='MultiLabelMetric', thr=0.3, average='micro'), _multi),
    (dict(type='MultiLabelMetric', topk=2, items=('recall', )), _multi),
    (dict(type='AveragePrecision'), _multi),
    (dict(type='AUROC'), _multi),
    (dict(type='AUROC', average=None), _multi),
    (dict(type='BinaryClassificationMetric'), _binary),
    (dict(
        type='BinaryClassificationMetric',
        items=('precision', 'recall'),
        prefix='hm'), _binary),
    (dict(type='MultiLabelClassificationMetric'), _multi),
    (dict(type='MultiLabelClassificationMetric', items=('auroc', )), _multi),
    (dict(type='ClinicalEfficacyMetric'), _reports),
    (dict(type='ReportMetric', scorers=('bleu', 'rouge', 'cider')), _reports),
    (dict(type='ViLBERTPretrainMetric'), _pretrain),
]


@pytest.mark.parametrize(
    'cfg, samples',
    CASES,
    ids=[f"{c['type']}-{i}" for i, (c, _) in enumerate(CASES)])
def test_listed_keys_are_the_scalar_keys_evaluate_gives(cfg, samples):
    register_all_modules(init_default_scope=False)
    metric = METRICS.build(cfg)
    listed = metric_keys(metric)
    data = samples()
    metric.process(None, data)
    got = metric.evaluate(len(data))
    scalar = sorted(k for k, v in got.items() if not isinstance(v, list))
    assert sorted(listed) == scalar


def test_alignment_metric_keys_are_patterns():
    register_all_modules(init_default_scope=False)
    metric = METRICS.build(
        dict(
            type='RepresentationAlignment',
            layers_a='text.*',
            layers_b='vision.*',
            metrics=('linear_cka', )))
    keys = metric_keys(metric)
    assert keys == ['alignment/linear_cka/mean', 'alignment/linear_cka/*']
    assert fnmatch.fnmatchcase('alignment/linear_cka/text.0~vision.0', keys[1])


def test_validation_keys_of_configs():
    cfg = Config.fromfile(TINY)
    assert validation_keys(cfg) == ['accuracy/top1']
    # an Evaluator dict, a list, an unknown metric class and AlignmentHook
    cfg.val_evaluator = dict(
        type='Evaluator',
        metrics=[
            dict(type='Accuracy', topk=(1, 5)),
            dict(type='ConfusionMatrix')
        ])
    cfg.custom_hooks = [dict(type='AlignmentHook', metrics=('svcca', ))]
    assert validation_keys(cfg) == [
        'accuracy/top1', 'accuracy/top5', 'confusion_matrix/*',
        'alignment/svcca/mean'
    ]
    cfg.val_evaluator = [dict(type='AUROC', prefix='x')]
    assert validation_keys(cfg)[0] == 'x/auroc'
    cfg.val_evaluator = dict(type='BinaryClassificationMetric', items=('f2', ))
    with pytest.raises(
            ConfigError,
            match="'BinaryClassificationMetric' "
            'cannot be built: ValueError: .*unknown items'):
        validation_keys(cfg)
    cfg.val_cfg = None
    with pytest.raises(ConfigError, match='no validation'):
        validation_keys(cfg)


def test_check_metrics_did_you_mean():
    cfg = Config.fromfile(TINY)
    assert check_metrics(cfg, ['accuracy/top1']) == ['accuracy/top1']
    with pytest.raises(ConfigError) as e:
        check_metrics(cfg, ['accuracy/top2'], 'tiny.py')
    msg = str(e.value)
    assert '\n' not in msg
    assert msg == ("--metric 'accuracy/top2' is not a validation metric of "
                   "tiny.py: did you mean 'accuracy/top1'? its val_evaluator "
                   'gives accuracy/top1')
    with pytest.raises(ConfigError, match="'loss' .* gives accuracy/top1$"):
        check_metrics(cfg, ['accuracy/top1', 'loss'], source='`metric`')
    # keys of an unknown metric class: anything under its prefix
    cfg.val_evaluator = [cfg.val_evaluator, dict(type='ConfusionMatrix')]
    check_metrics(cfg, ['confusion_matrix/anything'])
