# Copyright (c) mmext contributors. All rights reserved.
"""The docs check: every ``python tools/...`` command the READMEs show.

Each command in a ``bash`` block of README.md and the folder READMEs must
name a tool and config files that exist, and -- unless it holds a
placeholder (``CONFIG``, ``<study>``, ``$WORK_DIR``, ``[--opt]``) -- its
arguments must parse with the tool's own argparse parser. The tool runs in
this process up to its parser and is stopped there, so nothing is trained,
downloaded or written. Commands that do real work on generated data are run
by the tool tests (tests/test_tools); this check keeps the rest honest.
"""
import argparse
import re
import runpy
import shlex
import sys

import pytest

from tests.conftest import ROOT

DOCS = [
    ROOT / 'README.md', ROOT / 'data/README.md',
    ROOT / 'pretrain_pth/README.md'
] + sorted((ROOT / 'configs').glob('*/README.md'))
_BLOCK = re.compile(r'```(?:bash|sh|shell)\n(.*?)```', re.S)
# an upper-case word (CONFIG, CHECKPOINT, IMAGE, ARGS); <...>, [...], $VAR
_PLACEHOLDER_ARG = re.compile(r'^[A-Z][A-Z0-9_]{2,}$')
_PLACEHOLDER = re.compile(r'<[^>]*>|\[|\$|\.\.\.|…')


def _commands(path):
    text = path.read_text(encoding='utf-8')
    for block in _BLOCK.findall(text):
        joined = re.sub(r'\\\n\s*', ' ', block)
        for line in joined.splitlines():
            line = line.strip()
            if line.startswith('python tools/'):
                yield line


def _all_commands():
    for doc in DOCS:
        if doc.is_file():
            for cmd in _commands(doc):
                yield pytest.param(
                    cmd, id=f'{doc.relative_to(ROOT)}:{cmd[7:60]}')


class _Parsed(Exception):
    """Raised once the tool's command line has parsed."""

    def __init__(self, namespace):
        self.namespace = namespace


def _stop_after_parsing(monkeypatch):
    original = argparse.ArgumentParser.parse_known_args
    depth = [0]

    def parse_known_args(self, args=None, namespace=None):
        depth[0] += 1
        try:
            result = original(self, args, namespace)
        finally:
            depth[0] -= 1
        if depth[0] == 0:  # the tool's own call, not a subparser's
            raise _Parsed(result[0])
        return result

    monkeypatch.setattr(argparse.ArgumentParser, 'parse_known_args',
                        parse_known_args)


@pytest.mark.parametrize('command', list(_all_commands()))
def test_documented_command(command, monkeypatch, capsys):
    argv = shlex.split(command, comments=True)[1:]
    tool = ROOT / argv[0]
    assert tool.is_file(), f'{command}: no {argv[0]}'
    for arg in argv[1:]:
        for value in arg.split('='):
            if value.startswith('configs/') and value.endswith('.py'):
                assert (ROOT / value).is_file(), f'{command}: no {value}'
    if _PLACEHOLDER.search(command.split('#')[0]) or any(
            _PLACEHOLDER_ARG.search(a) for a in argv):
        return  # a template: the file checks above are what can be checked
    _stop_after_parsing(monkeypatch)
    monkeypatch.setattr(sys, 'argv', [str(tool)] + argv[1:])
    monkeypatch.chdir(ROOT)
    try:
        runpy.run_path(str(tool), run_name='__main__')
    except _Parsed:
        return
    except SystemExit as e:
        err = capsys.readouterr().err.strip().splitlines()
        pytest.fail(f'{command}: exit {e.code} while parsing: '
                    f'{err[-1] if err else ""}')
    pytest.fail(f'{command}: the tool ended without parsing a command '
                'line (the docs check cannot follow it)')


def test_docs_have_commands():
    """The check sees the commands (a broken extractor would pass)."""
    commands = list(_all_commands())
    assert len(commands) > 40
    assert any('tools/train.py' in c.values[0] for c in commands)
