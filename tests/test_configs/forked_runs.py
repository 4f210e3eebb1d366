# Copyright (c) mmext contributors. All rights reserved.
"""The process runner of ``test_all_configs.py``: one forked child per
config, two at a time, from a parent that has imported what mmext imports
from outside mmext (never mmext itself), so each config's ``custom_imports``
must still bring mmext in while the heavy imports are paid once.
"""
import importlib
import sys
import time
from pathlib import Path

#: what a config's ``custom_imports`` and the checks here import of mmext
MMEXT_MODULES = ('mmext.datasets', 'mmext.engine', 'mmext.evaluation',
                 'mmext.models', 'mmext.visualization',
                 'mmext.analysis.complexity', 'mmext.apis.inferencers')


def _modules_mmext_brings(conn):
    before = set(sys.modules)
    for name in MMEXT_MODULES:
        importlib.import_module(name)
    conn.send([
        m for m in sys.modules
        if m not in before and m.partition('.')[0] != 'mmext'
    ])
    conn.close()


def preload_third_party():
    """Import in the parent what importing mmext imports from outside mmext
    (learned in a throwaway fork), so each config's fork pays only for
    mmext's own modules; mmext itself stays out of the parent."""
    import multiprocessing as mp
    ctx = mp.get_context('fork')
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_modules_mmext_brings, args=(send, ))
    proc.start()
    send.close()
    names = recv.recv()
    proc.join()
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # an alias or a module only its importer can load
            pass
    assert 'mmext' not in sys.modules, 'a third-party module imported mmext'
    return len(names)


def _child(fn, path, conn):
    conn.send(fn(path))
    conn.close()


def run_all(fn, paths, jobs=2, timeout=600):
    """``fn(path)`` in a forked child per path (``jobs`` at a time);
    results (JSON-able dicts with ``ok``) by path."""
    import multiprocessing as mp
    from multiprocessing.connection import wait
    ctx = mp.get_context('fork')
    todo, running, results = list(paths), {}, {}
    while todo or running:
        while todo and len(running) < jobs:
            path = todo.pop(0)
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(fn, path, send))
            proc.start()
            send.close()
            running[recv] = (path, proc, time.time())
        for recv in wait(list(running), timeout=5):
            path, proc, _ = running.pop(recv)
            try:
                results[path] = recv.recv()
            except EOFError:
                results[path] = dict(ok=False, error='child died')
            proc.join()
            r = results[path]
            print(
                f"{len(results)}/{len(paths)} {Path(path).name}: "
                f"{'ok' if r['ok'] else 'FAILED'} {r.get('seconds', '')}",
                file=sys.stderr,
                flush=True)
        for recv, (path, proc, t0) in list(running.items()):
            if time.time() - t0 > timeout:
                proc.kill()
                proc.join()
                running.pop(recv)
                results[path] = dict(ok=False, error=f'timeout {timeout} s')
    return results
