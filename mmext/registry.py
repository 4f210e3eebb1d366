# Copyright (c) mmext contributors. All rights reserved.
"""mmext registries: one child of each mmpretrain registry, scope ``mmext``.

A config with ``default_scope = 'mmext'`` builds mmext types first and falls
back to mmpretrain and then mmengine, so ``type='ResNet'`` or
``type='ImageClassifier'`` resolve unprefixed. ``locations`` make the
registries import the modules that register into them on first use.

mmpretrain's own APIs and tools build in the ``'mmpretrain'`` scope
(``get_model`` forces it, ``browse_dataset`` sets it), and mmengine's lookup
never descends from a parent into a child registry, so a plain
``type='PartialFreeze'`` would not be found there. Each mmext registry
therefore also registers its entries in its parent (mmpretrain's registry)
under the same name, unless the parent chain already has that name: mmext
never shadows an mmpretrain / mmengine type. Such an overridden name (e.g.
mmext's ``Flowers102``) is reached from the mmpretrain scope as
``'mmext.Flowers102'``. The configs import the registering modules through
``custom_imports`` in ``configs/_base_/default_runtime.py``.
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
    'FUNCTIONS', 'MirroredRegistry'
]


class MirroredRegistry(Registry):
    """A child registry that also registers its entries in its parent.

    An entry goes to the parent only when no registry up the parent chain
    has the name yet (the parent's own lazy ``locations`` are imported
    first, so a later upstream registration cannot collide with it).
    """

    def _register_module(self, module, module_name=None, force=False):
        super()._register_module(module, module_name, force)
        names = module_name or module.__name__
        names = [names] if isinstance(names, str) else names
        self.parent.import_from_location()
        mirrored = self.__dict__.setdefault('_mirrored', set())
        for name in names:
            if name in mirrored:  # re-registered here with force=True
                self.parent._register_module(module, name, force=True)
            elif _lookup_chain(self.parent, name) is None:
                self.parent._register_module(module, name)
                mirrored.add(name)


def _lookup_chain(registry, name):
    while registry is not None:
        if name in registry.module_dict:
            return registry.module_dict[name]
        registry = registry.parent
    return None


def _child(name, parent, locations):
    return MirroredRegistry(
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
FUNCTIONS = MirroredRegistry(
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
