# Copyright (c) mmext contributors. All rights reserved.
"""Check that every DDP rank holds the same weights."""
import os
import os.path as osp

import torch
import torch.distributed as dist
from mmengine.dist import get_rank, get_world_size, is_distributed
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmext.registry import HOOKS


@HOOKS.register_module()
class DistConsistencyHook(Hook):
    """Verify after training (and every ``interval`` epochs) that all ranks
    hold bit-identical parameters.

    DDP keeps replicas in step only if every rank sees the same gradients; a
    rank-dependent branch, an unsynchronised random op or a parameter left out
    of the reduction lets them drift silently. mmengine has no such check.
    Each rank hashes its parameters into one float64 checksum per tensor; the
    checksums are gathered and compared on every rank.

    Args:
        interval (int): Check every ``interval`` training epochs; 0 checks
            only at the end. Defaults to 0.
        dump_dir (str, optional): Also save each rank's parameters to
            ``<work_dir>/<dump_dir>/rank<k>.pth`` after training (for tests
            and debugging). Defaults to None.
        strict (bool): Raise on a mismatch instead of logging an error.
            Defaults to True.

    Example:
        >>> custom_hooks = [dict(type='DistConsistencyHook', interval=1)]
    """

    priority = 'VERY_LOW'

    def __init__(self, interval=0, dump_dir=None, strict=True):
        self.interval = interval
        self.dump_dir = dump_dir
        self.strict = strict

    @staticmethod
    def _params(runner):
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        return dict(model.named_parameters())

    def _check(self, runner, when):
        if not is_distributed():
            return
        params = self._params(runner)
        # sum of values and of squares weighted by position: cheap, and any
        # difference in any element changes it with overwhelming probability
        sums = []
        for p in params.values():
            flat = p.detach().double().flatten()
            pos = torch.arange(
                1, flat.numel() + 1, dtype=torch.float64, device=flat.device)
            sums.append(torch.stack([flat.sum(), (flat * flat * pos).sum()]))
        local = torch.stack(sums)
        gathered = [torch.zeros_like(local) for _ in range(get_world_size())]
        dist.all_gather(gathered, local)
        names = list(params)
        for rank, other in enumerate(gathered):
            diff = (other != local).any(dim=1).nonzero().flatten()
            if len(diff):
                msg = (f'DDP ranks disagree {when}: rank {get_rank()} and '
                       f'rank {rank} differ in {len(diff)} parameter '
                       f'tensors, first {names[diff[0]]}')
                if self.strict:
                    raise RuntimeError(msg)
                runner.logger.error(msg)
                return
        runner.logger.info(f'DDP consistency {when}: {len(names)} parameter '
                           f'tensors identical on {get_world_size()} ranks')

    def after_train_epoch(self, runner):
        if self.interval and self.every_n_epochs(runner, self.interval):
            self._check(runner, f'after epoch {runner.epoch}')

    def after_train(self, runner):
        self._check(runner, 'after training')
        if self.dump_dir:
            out = osp.join(runner.work_dir, self.dump_dir)
            os.makedirs(out, exist_ok=True)
            state = {
                k: v.detach().cpu()
                for k, v in self._params(runner).items()
            }
            torch.save(state, osp.join(out, f'rank{get_rank()}.pth'))
