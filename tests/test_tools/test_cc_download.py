# Copyright (c) mmext contributors. All rights reserved.
"""tools/dataset_converters/conceptual_captions.py download / summary
against a local HTTP server, then the data set over its output (two
subprocesses: each pays the mmext import); Ctrl-C in the middle of a run;
bad input files as one line."""
import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

from mmext.datasets import ConceptualCaptions
from mmext.testing.multimodal import local_image_server
from ..conftest import ROOT, run_tool

TOOL = ROOT / 'tools' / 'dataset_converters' / 'conceptual_captions.py'


def test_cc_download_cli(tmp_path):
    data = tmp_path / 'data' / 'conceptual_captions'
    data.mkdir(parents=True)
    tsv = data / 'Validation_GCC-1.1.0-Validation.tsv'
    with local_image_server(slow=1.0) as server:
        paths = [
            '/img/1.png', '/img/2.png', '/missing/3.png', '/corrupt/4.jpg',
            '/slow/5.png', '/img/6.png'
        ]
        tsv.write_text(''.join(f'caption {i}\t{server.url(p)}\n'
                               for i, p in enumerate(paths, 1)))
        proc = run_tool([
            TOOL, 'download', tsv, '--timeout', '0.3', '--retries', '0',
            '--workers', '3', '--size', '32', '--limit', '5'
        ],
                        cwd=tmp_path,
                        timeout=120)
        assert '3 images in' not in proc.stdout
        assert '2 images in' in proc.stdout
        log = data / 'Validation_GCC-1.1.0-Validation.downloads.csv'
        with open(log, newline='') as f:
            rows = list(csv.DictReader(f))
        assert [r['status'] for r in rows
                ] == ['saved', 'saved', 'http_error', 'not_image', 'timeout']
        assert server.hits.get('/img/6.png') is None  # --limit 5
    # the resume logic is tested in-process (test_conceptual_captions.py)
    proc = run_tool([TOOL, 'summary', tsv], cwd=tmp_path)
    assert json.loads(proc.stdout) == {
        'saved': 2,
        'http_error': 1,
        'not_image': 1,
        'timeout': 1,
        'not attempted': 1
    }
    ds = ConceptualCaptions(str(data), split='val')
    assert len(ds) == 2 and ds.num_missing == 4
    assert [ds.get_data_info(i)['text']
            for i in range(2)] == ['caption 1', 'caption 2']


def _popen_tool(args, cwd):
    """Start the tool (as run_tool would) without waiting for it."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, str(TOOL)] + list(map(str, args)),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True)


def test_ctrl_c_stops_within_seconds_and_writes_the_log(tmp_path):
    tsv = tmp_path / 'cc.tsv'
    with local_image_server(slow=60) as server:
        paths = ['/img/1.png', '/img/2.png', '/img/3.png'] + \
            [f'/slow/{n}.png' for n in range(4, 10)]
        tsv.write_text(''.join(f'caption {i}\t{server.url(p)}\n'
                               for i, p in enumerate(paths, 1)))
        # one worker: lines 1-3 are done when line 4's request arrives
        proc = _popen_tool([
            'download', tsv, '--workers', '1', '--timeout', '60', '--size',
            '16', '--no-progress'
        ], tmp_path)
        try:
            t0 = time.monotonic()
            while '/slow/4.png' not in server.hits:
                assert proc.poll() is None and time.monotonic() - t0 < 60
                time.sleep(0.05)
            time.sleep(0.2)  # inside the 60 s wait for the answer
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            first = proc.stderr.readline()  # written after the log
            log_seconds = time.monotonic() - t0
            out, err = proc.communicate(timeout=60)
            exit_seconds = time.monotonic() - t0
        finally:
            proc.kill()
    assert proc.returncode == 130, first + err
    # the log within seconds (it was a minute); the exit adds the
    # interpreter's teardown of torch (~3 s on a loaded machine)
    assert log_seconds < 3 and exit_seconds < 15, (log_seconds, exit_seconds)
    err = first + err
    assert 'interrupted' in err and 'Traceback' not in err
    with open(tmp_path / 'cc.downloads.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert [(r['line'], r['status']) for r in rows] == [('1', 'saved'),
                                                        ('2', 'saved'),
                                                        ('3', 'saved')]
    assert server.hits.get('/slow/5.png') is None  # queued: cancelled


def _tool_main():
    spec = importlib.util.spec_from_file_location('cc_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_bad_input_is_one_line_naming_file_and_line(tmp_path, capsys):
    tsv = tmp_path / 'cc.tsv'
    tsv.write_bytes(b'a\thttp://127.0.0.1:9/1.png\ncaf\xe9\thttp://h/2\n')
    proc = run_tool([TOOL, 'download', tsv], cwd=tmp_path, check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert proc.stderr.count('\n') == 1
    assert str(tsv) in proc.stderr and 'line 2' in proc.stderr
    # the same in-process (the import costs ~10 s per subprocess)
    main = _tool_main()
    assert main(['summary', str(tsv)]) == 1
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and str(tsv) in err and 'line 2' in err
    tsv.write_text('a\thttp://h/1\n')
    (tmp_path / 'cc.downloads.csv').write_text(
        'line,status,detail,file,url,caption\none,saved,,x.jpg,http://h/1,a\n')
    for command in ('summary', 'download'):
        assert main([command, str(tsv), '--out', str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert err.count('\n') == 1
        assert f'download log {tmp_path / "cc.downloads.csv"}, line 2' \
            in err
