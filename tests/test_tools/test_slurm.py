# Copyright (c) mmext contributors. All rights reserved.
"""tools/slurm_train.sh and slurm_test.sh on a real one-node Slurm cluster
(tools/misc/local_slurm.sh: munged, slurmctld, slurmd on this host, 2 tasks
on CPUs with gloo), and the srun options they compose for GPU and CPU
partitions."""
import json
import os
import shutil
import stat
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from mmext.utils import safe_torch_load
from ..conftest import ROOT, run_tool

TINY = ROOT / 'configs/tiny/resnet18_1xb8-scratch_tiny-64px.py'
HELPER = ROOT / 'tools/misc/local_slurm.sh'
NEEDED = ('munged', 'mungekey', 'slurmctld', 'slurmd', 'srun', 'sinfo')


@pytest.fixture(scope='module')
def slurm():
    """Start a private cluster for this module; yield the clients' env."""
    missing = [exe for exe in NEEDED if shutil.which(exe) is None]
    if missing:
        pytest.skip(f'Slurm is not installed ({", ".join(missing)} not '
                    'found): apt-get install -y slurm-wlm munge '
                    '(.ci/run does)')
    if os.geteuid() != 0:
        pytest.skip('a local Slurm cluster needs root (slurmd starts jobs '
                    'as their user)')
    # not under pytest's basetemp, which other pytest runs may prune while
    # the daemons still need it
    state = Path(tempfile.mkdtemp(prefix='mmext-slurm-'))
    start = subprocess.run(['bash', str(HELPER), 'start',
                            str(state)],
                           capture_output=True,
                           text=True,
                           timeout=90)
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        yield {'SLURM_CONF': str(state / 'slurm.conf')}
    finally:
        subprocess.run(['bash', str(HELPER), 'stop',
                        str(state)],
                       capture_output=True,
                       timeout=60)
        shutil.rmtree(state, ignore_errors=True)


def _fake_srun(tmp_path):
    """A PATH whose ``srun`` only prints its arguments, one per line, and
    whose ``sinfo`` reports the partition's gres as ``$FAKE_GRES``."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, body in (('srun', 'printf "%s\\n" "$@"'),
                       ('sinfo', 'echo "${FAKE_GRES:-gpu:8}"')):
        exe = bin_dir / name
        exe.write_text(f'#!/usr/bin/env bash\n{body}\n')
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return f'{bin_dir}{os.pathsep}{os.environ["PATH"]}'


@pytest.mark.parametrize(
    'env, expected, absent',
    [
        # GPU partition, 2 nodes of 8 GPUs (mmpretrain's defaults)
        ({
            'GPUS': '16'
        }, [
            '--gres=gpu:8', '--ntasks=16', '--ntasks-per-node=8',
            '--cpus-per-task=5'
        ], []),
        # fewer GPUs than a node has: ask for only those
        ({
            'GPUS': '2'
        }, ['--gres=gpu:2', '--ntasks=2', '--ntasks-per-node=2'], []),
        # CPU partition, 2 nodes of 2 tasks: no --gres
        ({
            'GPUS': '0',
            'NTASKS': '4',
            'TASKS_PER_NODE': '2',
            'CPUS_PER_TASK': '1'
        }, ['--ntasks=4', '--ntasks-per-node=2', '--cpus-per-task=1'
            ], ['--gres']),
        # the CPU attempt: no GPUs per node, Slurm places the tasks
        ({
            'GPUS': '2',
            'GPUS_PER_NODE': '0'
        }, ['--ntasks=2'], ['--gres', '--ntasks-per-node']),
    ])
@pytest.mark.parametrize('script', ['slurm_train.sh', 'slurm_test.sh'])
def test_srun_options(tmp_path, script, env, expected, absent):
    env = dict(env, PATH=_fake_srun(tmp_path))
    proc = run_tool([
        'bash', ROOT / 'tools' / script, 'part', 'job', 'cfg.py', 'x',
        '--cfg-options', 'a=1'
    ],
                    cwd=tmp_path,
                    env=env)
    args = proc.stdout.splitlines()
    assert args[:2] == ['-p', 'part']
    assert '--job-name=job' in args and '--kill-on-bad-exit=1' in args
    for arg in expected:
        assert arg in args
    assert not [a for a in args for bad in absent if a.startswith(bad)]
    assert args[-3:] == ['--launcher=slurm', '--cfg-options', 'a=1']


@pytest.mark.parametrize('env, message', [
    ({
        'GPUS': '0'
    }, 'no processes to start (GPUS=0); on a CPU partition '
     'set NTASKS, e.g. GPUS=0 NTASKS=2'),
    ({
        'GPUS': '2',
        'FAKE_GRES': '(null)'
    }, 'partition part has no GPUs '
     '(gres: (null)); on a CPU partition set GPUS=0 NTASKS=N'),
])
def test_refused_before_srun(tmp_path, env, message):
    proc = run_tool(
        ['bash', ROOT / 'tools/slurm_train.sh', 'part', 'job', 'cfg.py', 'wd'],
        cwd=tmp_path,
        check=False,
        env=dict(env, PATH=_fake_srun(tmp_path)))
    assert proc.returncode == 2
    assert f'slurm_train.sh: {message}' in proc.stderr.splitlines()
    assert proc.stdout == ''  # srun never ran


def _slurm_run(script, args, cwd, slurm):
    env = dict(slurm, GPUS='0', NTASKS='2', CPUS_PER_TASK='1')
    return run_tool(
        ['bash', ROOT / 'tools' / script, 'debug', 'mmext'] + args,
        cwd=cwd,
        env=env,
        timeout=240,
        check=False)


def test_train_and_test_through_srun(slurm, tiny_workspace):
    ws = tiny_workspace
    cfg = ws / 'slurm_tiny.py'
    cfg.write_text(
        f"_base_ = ['{TINY}']\n"
        "custom_hooks = [dict(type='DistConsistencyHook', dump_dir='ranks')]"
        '\n')
    proc = _slurm_run(
        'slurm_train.sh',
        [cfg, 'work_dirs/slurm', '--cfg-options', 'train_cfg.max_epochs=1'],
        ws, slurm)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Distributed launcher: slurm' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    assert 'identical on 2 ranks' in log
    r0 = safe_torch_load(ws / 'work_dirs/slurm/ranks/rank0.pth')
    r1 = safe_torch_load(ws / 'work_dirs/slurm/ranks/rank1.pth')
    assert all(torch.equal(r0[k], r1[k]) for k in r0)

    ckpt = 'work_dirs/slurm/epoch_1.pth'
    with ThreadPoolExecutor(1) as pool:  # the one-process test alongside
        single = pool.submit(
            run_tool, [
                ROOT / 'tools/test.py', TINY, ckpt, '--work-dir',
                'work_dirs/slurm_single', '--out',
                'work_dirs/slurm_single/m.json', '--out-item', 'metrics'
            ],
            cwd=ws)
        proc = _slurm_run('slurm_test.sh', [
            TINY, ckpt, '--work-dir', 'work_dirs/slurm_test', '--out',
            'work_dirs/slurm_test/m.json', '--out-item', 'metrics'
        ], ws, slurm)
        single.result()
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'GPU number: 2' in log
    dist_acc = json.loads(
        (ws / 'work_dirs/slurm_test/m.json').read_text())['accuracy/top1']
    single_acc = json.loads(
        (ws / 'work_dirs/slurm_single/m.json').read_text())['accuracy/top1']
    # both ranks' halves of the val set are gathered: same accuracy
    assert dist_acc == pytest.approx(single_acc, abs=1e-6)
    assert 0 < single_acc < 100


def test_failed_job_exits_with_the_plain_error(slurm, tmp_path):
    # no data/tiny under tmp_path: the data-root check refuses the config
    with ThreadPoolExecutor(1) as pool:  # the plain run alongside
        plain = pool.submit(
            run_tool, [ROOT / 'tools/train.py', TINY, '--work-dir', 'wd'],
            cwd=tmp_path,
            check=False)
        proc = _slurm_run('slurm_train.sh', [TINY, 'wd'], tmp_path, slurm)
        plain = plain.result()
    assert plain.returncode != 0
    message = plain.stderr.strip().splitlines()[-1]
    assert "data_root 'data/tiny'" in message
    assert proc.returncode != 0
    assert message in proc.stderr.splitlines()
    assert not (tmp_path / 'wd').exists()  # nothing started


def test_gpus_asked_on_a_cpu_partition(slurm, tmp_path):
    # the first attempt: a one-line cause and fix, not srun's
    # "Invalid generic resource (gres) specification"
    env = dict(slurm, GPUS='2', GPUS_PER_NODE='2', CPUS_PER_TASK='1')
    proc = run_tool([
        'bash', ROOT / 'tools/slurm_test.sh', 'debug', 'mmext', TINY, 'x.pth'
    ],
                    cwd=tmp_path,
                    env=env,
                    check=False)
    assert proc.returncode == 2
    assert ('slurm_test.sh: partition debug has no GPUs (gres: (null)); on '
            'a CPU partition set GPUS=0 NTASKS=N') in proc.stderr
