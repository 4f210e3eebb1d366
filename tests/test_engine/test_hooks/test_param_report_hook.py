# Copyright (c) mmext contributors. All rights reserved.
import logging
from types import SimpleNamespace

import torch
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor

import mmext.engine  # noqa: F401
import mmext.models  # noqa: F401
from mmext.engine.hooks import TrainableParamsHook
from mmext.engine.hooks.param_report_hook import param_table
from mmext.engine.optimizers import TrainableOptimWrapperConstructor
from mmext.registry import HOOKS, MODELS
from mmext.utils import register_all_modules

register_all_modules()  # ImageClassifier builds its backbone in scope


def _model():
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='PartialFreeze',
                frozen_stages=2,
                backbone=dict(type='ResNet', depth=18, base_channels=8)),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=3, in_channels=64)))


class _Capture(logging.Handler):

    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append((record.levelno, record.getMessage()))


def _run_hook(model, constructor):
    logger = MMLogger.get_instance('test_param_report')
    capture = _Capture()
    logger.addHandler(capture)
    optim_wrapper = constructor(dict(optimizer=dict(type='SGD', lr=0.1)))(
        model)
    runner = SimpleNamespace(
        model=model, logger=logger, optim_wrapper=optim_wrapper)
    HOOKS.build(dict(type='TrainableParamsHook')).before_train(runner)
    logger.removeHandler(capture)
    return capture.records


def test_table_counts():
    model = _model()
    rows = {r[0]: r[1:] for r in param_table(model, depth=2)}
    layer1 = sum(p.numel() for p in model.backbone.layer1.parameters())
    layer3 = sum(p.numel() for p in model.backbone.layer3.parameters())
    assert rows['backbone.layer1'] == (0, layer1)
    assert rows['backbone.layer3'] == (layer3, layer3)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert rows['total'] == (trainable, total)


def test_hook_logs_table_and_flags_frozen_in_optimizer():
    model = _model()
    records = _run_hook(model, TrainableOptimWrapperConstructor)
    table = [m for _, m in records if m.startswith('Trainable parameters')]
    assert table and 'backbone.layer1' in table[0]
    assert 'kept in eval mode (fully frozen): 4 modules: backbone.conv1, ' \
        'backbone.bn1, backbone.layer1, backbone.layer2' in table[0]
    assert not [m for lvl, m in records if lvl >= logging.WARNING]

    records = _run_hook(model, DefaultOptimWrapperConstructor)
    warnings = [m for lvl, m in records if lvl >= logging.WARNING]
    assert len(warnings) == 1 and 'frozen tensors' in warnings[0]


def test_hook_flags_trainable_missing_from_optimizer():
    model = _model()
    logger = MMLogger.get_instance('test_param_report2')
    capture = _Capture()
    logger.addHandler(capture)
    optimizer = torch.optim.SGD(model.head.parameters(), lr=0.1)
    runner = SimpleNamespace(
        model=model,
        logger=logger,
        optim_wrapper=SimpleNamespace(optimizer=optimizer))
    TrainableParamsHook().before_train(runner)
    warnings = [m for lvl, m in capture.records if lvl >= logging.WARNING]
    assert len(warnings) == 1 and 'not in the optimizer' in warnings[0]
