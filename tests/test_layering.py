# Copyright (c) mmext contributors. All rights reserved.
"""Imports point down: tools -> apis -> models / datasets / evaluation ->
utils, and the package never imports ``mmext.testing`` or ``tools``.

Read from the code's own import statements (AST; docstring examples do not
count). Known debts are listed with the issue that removes them; a new
upward import fails here.
"""
import ast

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / 'mmext'
# layer of each top-level subpackage: a module may import its own layer or
# lower ones
LAYERS = {
    'utils': 0,
    'registry': 0,
    'models': 1,
    'datasets': 1,
    'evaluation': 1,
    'engine': 1,
    'dedup': 1,
    'analysis': 1,  # representations and complexity of built models
    'apis': 2,
    'hpo': 2,  # studies of training runs (apis' pre-run check)
    'visualization': 2,  # pictures of inference results and run tables
}
# (importing file, imported module prefix): why it is still there
KNOWN = {}


def _imports(path):
    tree = ast.parse(path.read_text(encoding='utf-8'))
    package = '.'.join(path.relative_to(ROOT).with_suffix('').parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                yield '.'.join(base + ([node.module] if node.module else []))
            elif node.module:
                yield node.module


def _modules():
    return sorted(
        p for p in PACKAGE.rglob('*.py')
        if 'testing' not in p.relative_to(PACKAGE).parts[:1])


@pytest.mark.parametrize(
    'path', _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path):
    rel = path.relative_to(ROOT).as_posix()
    parts = path.relative_to(PACKAGE).parts
    own = LAYERS.get(parts[0].removesuffix('.py')) if len(parts) > 1 \
        else None
    problems = []
    for name in _imports(path):
        if name.startswith(('tools', 'tests')):
            problems.append(f'imports {name}')
            continue
        if not name.startswith('mmext.'):
            continue
        if any(rel == f and name.startswith(m) for f, m in KNOWN):
            continue
        target = name.split('.')[1]
        if target == 'testing':
            problems.append(f'imports {name} (test helpers)')
        elif own is not None and LAYERS.get(target, -1) > own:
            problems.append(f'imports {name}: layer {LAYERS[target]} above '
                            f'its own ({own})')
    assert not problems, f'{rel}: ' + '; '.join(problems)


def test_the_check_sees_imports():
    """The AST walk finds relative and absolute imports (a broken walk would
    let every module pass)."""
    found = set(_imports(PACKAGE / 'apis' / 'flowers_demo.py'))
    assert 'mmext.datasets.synthetic.flowers' in found  # absolute
    assert 'mmext.apis.tool_runs' in found  # relative, resolved
    assert any(
        n.startswith('mmext.')
        for n in _imports(PACKAGE / 'models' / 'multimodal' / 'vilbert' /
                          'vilbert.py'))
