# Copyright (c) mmext contributors. All rights reserved.
"""Modules that moved keep their old import paths for user code (issue 23).

R2Gen moved from ``mmext.models.report`` to ``mmext.models.multimodal.r2gen``
(mmpretrain's place for image-to-text models) and four ``report.py`` files
got names that say what they are (five with ``mmext.dedup.report`` ->
``mmext.dedup.leakage_report``). Each old path re-exports the same objects
(not copies), and the registered names stay those of the new modules, so
configs and checkpoints keep working. The checkpoint converters' old paths
are checked in ``tests/test_tools/test_converter_errors.py``.
"""
import importlib

import pytest

from mmext.registry import MODELS, TOKENIZER, TRANSFORMS

R2GEN = 'mmext.models.multimodal.r2gen'
# (old path, new path, names public before the move but not in __all__)
MOVED = [
    ('mmext.models.report', R2GEN, []),
    ('mmext.models.report.data_preprocessor', f'{R2GEN}.data_preprocessor',
     []),
    ('mmext.models.report.decoding', f'{R2GEN}.decoding', []),
    ('mmext.models.report.generator', f'{R2GEN}.generator', []),
    ('mmext.models.report.layers', f'{R2GEN}.layers',
     ['SublayerConnection', 'ConditionalSublayerConnection']),
    ('mmext.models.report.r2gen_head', f'{R2GEN}.r2gen_head',
     ['VocabSizeMismatchError']),
    ('mmext.models.report.tokenizer', f'{R2GEN}.tokenizer', []),
    ('mmext.apis.report', 'mmext.apis.report_generation', []),
    ('mmext.apis.inferencers.report', 'mmext.apis.inferencers.r2gen', []),
    ('mmext.datasets.transforms.report', 'mmext.datasets.transforms.r2gen',
     []),
    ('mmext.hpo.report', 'mmext.hpo.study_report', []),
    ('mmext.dedup.report', 'mmext.dedup.leakage_report', []),
    ('mmext.testing.flowers', 'mmext.datasets.synthetic.flowers', []),
]


@pytest.mark.parametrize('old, new, extra', MOVED, ids=[m[0] for m in MOVED])
def test_old_path_exports_the_same_objects(old, new, extra):
    new_mod = importlib.import_module(new)
    # importing the old path after the new one would raise mmengine's
    # "already registered" KeyError if the alias redefined a class
    old_mod = importlib.import_module(old)
    assert old_mod is not new_mod and old_mod.__all__ == new_mod.__all__
    assert new_mod.__all__, new
    for name in list(new_mod.__all__) + extra:
        assert getattr(old_mod, name) is getattr(new_mod, name), name
    star = {}
    exec(f'from {old} import *', star)  # what `import *` users receive
    assert set(star) - {'__builtins__'} == set(new_mod.__all__)


@pytest.mark.parametrize('registry, name, module', [
    (MODELS, 'R2GenReportGenerator', f'{R2GEN}.generator'),
    (MODELS, 'R2GenHead', f'{R2GEN}.r2gen_head'),
    (MODELS, 'ReportDataPreprocessor', f'{R2GEN}.data_preprocessor'),
    (TOKENIZER, 'R2GenTokenizer', f'{R2GEN}.tokenizer'),
    (TRANSFORMS, 'PackReportInputs', 'mmext.datasets.transforms.r2gen'),
    (TRANSFORMS, 'LoadMultiViewImages', 'mmext.datasets.transforms.r2gen'),
    (TRANSFORMS, 'ApplyToViews', 'mmext.datasets.transforms.r2gen'),
])
def test_registered_names_unchanged(registry, name, module):
    importlib.import_module('mmext.models.report')  # the alias loaded too
    new_cls = getattr(importlib.import_module(module), name)
    assert registry.get(name) is new_cls and new_cls.__module__ == module
