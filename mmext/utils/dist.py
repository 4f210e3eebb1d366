# Copyright (c) mmext contributors. All rights reserved.
"""Distributed training without GPUs.

mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device`` and defaults
to NCCL, so ``--launcher pytorch`` fails on a CPU-only machine, and its default
DDP wrapper passes ``device_ids=[LOCAL_RANK]``. On such a machine
:func:`setup_cpu_distributed` starts a gloo process group first (mmengine then
skips its own initialisation) and makes DDP wrap the model with
``device_ids=None``. With GPUs nothing changes.
"""
import os
import subprocess

import torch
import torch.distributed as dist

__all__ = ['setup_cpu_distributed']


def _slurm_env():
    """Translate SLURM's variables into torch.distributed's env:// ones."""
    nodes = os.environ['SLURM_NODELIST']
    addr = subprocess.getoutput(
        f'scontrol show hostname {nodes} | head -n1').strip()
    os.environ.setdefault('MASTER_ADDR', addr)
    # jobs sharing a node must not share a port: one per job id
    job_id = int(os.environ.get('SLURM_JOB_ID', '0'))
    os.environ.setdefault('MASTER_PORT', str(20000 + job_id % 10000))
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['LOCAL_RANK'] = os.environ['SLURM_LOCALID']


def setup_cpu_distributed(cfg, launcher):
    """Prepare ``cfg`` and the process group for DDP on CPUs (gloo).

    Args:
        cfg (mmengine.Config): The run's config, changed in place.
        launcher (str): ``'none'``, ``'pytorch'`` or ``'slurm'``.

    Returns:
        bool: True if a gloo CPU process group was set up.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher == 'slurm':
        _slurm_env()
    elif launcher != 'pytorch':
        raise ValueError(f'launcher {launcher!r} is not supported on CPU; '
                         "use 'pytorch' (torchrun) or 'slurm'")
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo', init_method='env://')
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    cfg.env_cfg.dist_cfg['backend'] = 'gloo'
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    return True
