# Copyright (c) mmext contributors. All rights reserved.
"""mmext registries: one child of each mmpretrain registry, scope ``mmext``.

A config with ``default_scope = 'mmext'`` builds mmext types first and falls
back to mmpretrain and then mmengine, so ``type='ResNet'`` or
``type='ImageClassifier'`` resolve unprefixed. ``locations`` make the
registries import the modules that register into them on first use.
"""
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import Registry
from mmpretrain import registry as mmpretrain_registry

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'LOG_PROCESSORS',
    'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS',
    'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'BATCH_AUGMENTS', 'TASK_UTILS',
    'METRICS', 'EVALUATORS', 'VISUALIZERS', 'VISBACKENDS', 'TOKENIZER',
    'FUNCTIONS'
]


def _child(name, parent, locations):
    return Registry(
        name,
        parent=getattr(mmpretrain_registry, parent),
        scope='mmext',
        locations=locations)


_ENGINE = ['mmext.engine']
RUNNERS = _child('runner', 'RUNNERS', _ENGINE)
RUNNER_CONSTRUCTORS = _child('runner constructor', 'RUNNER_CONSTRUCTORS',
                             _ENGINE)
LOOPS = _child('loop', 'LOOPS', _ENGINE)
HOOKS = _child('hook', 'HOOKS', _ENGINE)
LOG_PROCESSORS = _child('log processor', 'LOG_PROCESSORS', _ENGINE)
OPTIMIZERS = _child('optimizer', 'OPTIMIZERS', _ENGINE)
OPTIM_WRAPPERS = _child('optim_wrapper', 'OPTIM_WRAPPERS', _ENGINE)
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    'OPTIM_WRAPPER_CONSTRUCTORS', _ENGINE)
PARAM_SCHEDULERS = _child('parameter scheduler', 'PARAM_SCHEDULERS', _ENGINE)

DATASETS = _child('dataset', 'DATASETS', ['mmext.datasets'])
DATA_SAMPLERS = _child('data sampler', 'DATA_SAMPLERS', ['mmext.datasets'])
TRANSFORMS = _child('transform', 'TRANSFORMS', ['mmext.datasets'])
# collate functions; mmpretrain has no FUNCTIONS node, so mmengine's is the
# parent
FUNCTIONS = Registry(
    'function',
    parent=MMENGINE_FUNCTIONS,
    scope='mmext',
    locations=['mmext.datasets'])

MODELS = _child('model', 'MODELS', ['mmext.models'])
MODEL_WRAPPERS = _child('model_wrapper', 'MODEL_WRAPPERS', ['mmext.models'])
WEIGHT_INITIALIZERS = _child('weight initializer', 'WEIGHT_INITIALIZERS',
                             ['mmext.models'])
BATCH_AUGMENTS = _child('batch augment', 'BATCH_AUGMENTS', ['mmext.models'])
TASK_UTILS = _child('task util', 'TASK_UTILS', ['mmext.models'])
TOKENIZER = _child('tokenizer', 'TOKENIZER', ['mmext.models'])

METRICS = _child('metric', 'METRICS', ['mmext.evaluation'])
EVALUATORS = _child('evaluator', 'EVALUATORS', ['mmext.evaluation'])

VISUALIZERS = _child('visualizer', 'VISUALIZERS', ['mmext.visualization'])
VISBACKENDS = _child('vis_backend', 'VISBACKENDS', ['mmext.visualization'])
