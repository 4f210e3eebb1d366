# Copyright (c) mmext contributors. All rights reserved.
"""Fixtures shared by the whole suite: the repo root and a CLI runner."""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = ROOT / 'tests' / 'data'  # golden values and small fixtures
# the end-to-end configs the tool tests run on generated data
TINY_CONFIG = ROOT / 'configs/tiny/resnet18_1xb8-scratch_tiny-64px.py'
TINY_R2GEN_CONFIG = (
    ROOT / 'configs/r2gen/'
    'r2gen_tiny_1xb4-scratch_tiny-iu-xray-64px.py')


def run_tool(args, cwd, timeout=600, env=None, check=True):
    """Run ``python <args...>`` (or a shell script) from ``cwd``.

    Returns the CompletedProcess; with ``check`` a non-zero exit fails the
    test with the tail of the output.
    """
    full_env = dict(os.environ)
    full_env.setdefault('OMP_NUM_THREADS', '1')
    full_env['PYTHONPATH'] = os.pathsep.join(
        [str(ROOT), full_env.get('PYTHONPATH', '')])
    # console scripts (torchrun, mim) of this interpreter's environment,
    # also when the venv is not activated (make test runs .venv/bin/python)
    full_env['PATH'] = os.pathsep.join(
        [str(Path(sys.executable).parent),
         full_env.get('PATH', '')])
    full_env.update(env or {})
    cmd = list(map(str, args))
    if cmd[0].endswith('.py'):
        cmd = [sys.executable] + cmd
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout)
    if check and proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        pytest.fail(f'{" ".join(cmd)} exited {proc.returncode}:\n{tail}')
    return proc


class ToolsAhead:
    """A module's tool runs, started before its tests ask for them, two at a
    time (the CI machine's cores): every CLI pays ~5-10 s of imports, and
    these overlap instead of adding up. Only runs that a selected test needs
    start (``-k`` one test does not run the module's other tools).
    """

    def __init__(self, module, items, workers=2):
        self._selected = {
            getattr(item, 'originalname', item.name)
            for item in items if getattr(item, 'module', None) is module
        }
        self._pool = ThreadPoolExecutor(workers)
        self._runs = {}

    def selected(self, *tests):
        """Whether one of ``tests`` (names of the module's test functions)
        runs in this session."""
        return bool(self._selected & set(tests))

    def start(self, key, tests, fn, *args, **kwargs):
        """Start ``fn(*args, **kwargs)`` as ``key`` if one of ``tests`` is
        :meth:`selected`."""
        if self.selected(*tests):
            self._runs[key] = self._pool.submit(fn, *args, **kwargs)

    def __getitem__(self, key):
        """What run ``key`` returned (waits; re-raises what it raised)."""
        return self._runs[key].result()

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope='module')
def tools_ahead(request):
    """A :class:`ToolsAhead` for the requesting module."""
    ahead = ToolsAhead(request.module, request.session.items)
    yield ahead
    ahead.close()


@pytest.fixture(scope='session')
def repo_root():
    return ROOT


@pytest.fixture(scope='session')
def tiny_workspace(tmp_path_factory):
    """A working directory holding ``data/tiny`` (configs/tiny's data)."""
    from mmext.testing import make_image_folder
    ws = tmp_path_factory.mktemp('tiny_ws')
    make_image_folder(ws / 'data' / 'tiny', per_class=16, size=64)
    return ws


def free_port():
    """A free TCP port on 127.0.0.1 (for torchrun's rendezvous)."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def assert_ranks_identical(dump_dir):
    """The DistConsistencyHook dumps of ranks 0 and 1 hold equal tensors."""
    import torch
    r0 = torch.load(Path(dump_dir) / 'rank0.pth', weights_only=True)
    r1 = torch.load(Path(dump_dir) / 'rank1.pth', weights_only=True)
    assert r0.keys() == r1.keys()
    assert all(torch.equal(r0[k], r1[k]) for k in r0)


# Fuzz tests (hypothesis): fixed seed and bounded examples in `make test`;
# HYPOTHESIS_PROFILE=fuzz-long for a longer, randomised run (README).
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # pragma: no cover - hypothesis is in tests.txt
    pass
else:
    settings.register_profile(
        'ci',
        derandomize=True,
        max_examples=60,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile(
        'fuzz-long',
        max_examples=2000,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'ci'))
