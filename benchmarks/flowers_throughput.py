# Copyright (c) mmext contributors. All rights reserved.
"""Training throughput of every configs/flowers model vs plain mmpretrain.

For each config: the model as the config builds it (PartialFreeze, the
TrainableOptimWrapperConstructor with the config's paramwise_cfg) against the
same classifier built directly by mmpretrain (the inner backbone, no
freezing) with mmengine's DefaultOptimWrapperConstructor. Both run forward +
backward + optimizer step on the same random batch, interleaved iteration by
iteration so machine-load drift hits both alike; img/s and the ratio are
printed from this one run. Configs whose models and optimizer settings are
the same (pretrained vs scratch, stage 2 vs the ResNet-18 run) are measured
once. Pretrained init is skipped (no weights needed). One torch thread by
default: on a shared 2-core machine more threads oversubscribe the cores.

    python benchmarks/flowers_throughput.py [--size 64] [--batch 4] [--iters 3]
"""
import argparse
import copy
import os.path as osp
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor, build_optim_wrapper

from mmext.registry import MODELS
from mmext.testing import drop_pretrained
from mmext.utils import register_all_modules

ROOT = Path(__file__).resolve().parents[1]


def _inner(model_cfg):
    """The mmpretrain backbone inside mmext's freezing wrapper, or the
    backbone itself for configs without one (the demo's ResNet-18s)."""
    backbone = model_cfg['backbone']
    return backbone.get('backbone', backbone)


def load(path, size):
    """(config, model cfg without weights, signature of what is timed)."""
    cfg = Config.fromfile(path)
    model_cfg = copy.deepcopy(cfg.model.to_dict())
    drop_pretrained(model_cfg)
    inner = _inner(model_cfg)
    if inner['type'] == 'TinyViT':
        inner['img_size'] = (size, size)  # TinyViT's input must equal it
        inner.pop('init_cfg', None)  # scratch vs pretrained: same model
    return cfg, model_cfg, repr((model_cfg, cfg.optim_wrapper.to_dict()))


def build_pair(cfg, model_cfg):
    inner = _inner(model_cfg)
    torch.manual_seed(0)
    ours = MODELS.build(model_cfg)
    ours_optim = build_optim_wrapper(ours, copy.deepcopy(cfg.optim_wrapper))
    ref_cfg = dict(model_cfg, backbone=inner)
    torch.manual_seed(0)
    ref = MODELS.build(ref_cfg)
    plain = {
        k: v
        for k, v in cfg.optim_wrapper.to_dict().items()
        if k not in ('constructor', 'paramwise_cfg')
    }
    ref_optim = DefaultOptimWrapperConstructor(plain)(ref)
    return (ours, ours_optim), (ref, ref_optim)


def step(model, optim_wrapper, x, y):
    start = time.perf_counter()
    loss = F.cross_entropy(model(x, mode='tensor'), y)
    optim_wrapper.update_params(loss)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--size',
        type=int,
        default=64,
        help='image side (TinyViT needs a multiple of 32)')
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--configs', nargs='*', help='default: all')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    register_all_modules()
    MMLogger.get_current_instance().setLevel('WARNING')
    paths = args.configs or sorted(
        str(p) for p in (ROOT / 'configs/flowers').glob('*.py')
        if not p.name.startswith('demo_'))
    print(f'batch {args.batch} x {args.size}px, {args.iters} timed '
          f'iterations after 1 warm-up, torch threads '
          f'{torch.get_num_threads()}')
    head = (f'{"config":<38} {"trainable":>9} {"groups":>7} '
            f'{"ours img/s":>10} {"mmpre img/s":>11} {"ratio":>6}')
    print(head + '\n' + '-' * len(head))
    groups = {}  # signature -> config names, in first-seen order
    loaded = {}
    for path in paths:
        cfg, model_cfg, sig = load(path, args.size)
        name = osp.splitext(osp.basename(path))[0]
        if sig not in groups:
            loaded[sig] = (cfg, model_cfg)
        groups.setdefault(sig, []).append(name)
    for sig, names in groups.items():
        (ours, ow), (ref, rw) = build_pair(*loaded[sig])
        ours.train()
        ref.train()
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(args.batch, 3, args.size, args.size, generator=gen)
        y = torch.randint(
            0, ours.head.num_classes, (args.batch, ), generator=gen)
        step(ours, ow, x, y)
        step(ref, rw, x, y)
        t_ours = t_ref = 0.0
        for _ in range(args.iters):
            t_ours += step(ours, ow, x, y)
            t_ref += step(ref, rw, x, y)
        n = args.iters * args.batch
        trainable = sum(p.numel() for p in ours.parameters()
                        if p.requires_grad)
        total = sum(p.numel() for p in ours.parameters())
        groups = f'{len(ow.optimizer.param_groups)}/' \
            f'{len(rw.optimizer.param_groups)}'
        print(
            f'{names[0]:<38} '
            f'{100 * trainable / total:>8.1f}% {groups:>7} '
            f'{n / t_ours:>10.1f} {n / t_ref:>11.1f} '
            f'{t_ref / t_ours:>5.2f}x',
            flush=True)
        for other in names[1:]:
            print(f'  {other} (same model and optimizer)')
        del ours, ref, ow, rw


if __name__ == '__main__':
    main()
