# Copyright (c) mmext contributors. All rights reserved.
"""Training cost of TRAR-ViT-B/16 vs mmpretrain's ViT-B/16 on this machine.

For each setting (224 px, orders [0,1,2,3]; 384 px, orders [0,1,2]) it
compares four models with the same weights and batch:

* ``vit``: mmpretrain ``VisionTransformer`` (fused SDPA, no mask);
* ``trar``: mmext ``TRARViT`` as configured (``attn_impl='auto'``: on CPU
  the nested path, one score matrix with ring-wise span coefficients);
* ``perspan``: ``TRARViT`` with ``attn_impl='per_span'`` (one SDPA per span,
  outputs mixed; the previous formulation);
* ``naive``: ``TRARViT`` with the reference formulation (scores masked with
  -1e9, all L softmax maps stacked as (B, L, H, N, N), einsum, times V) —
  what rentainhe/TRAR-VQA and ViT-TRAR do.

Targets (issue 13): ``trar`` <= 1.15x ViT time and saved activations at
224, <= 1.25x time / 1.2x activations at 384.

Time: forward + backward, the fastest of ``--reps`` runs (the least
disturbed by other processes), the three models interleaved in rotating
order in one process so machine-load drift hits all alike.
Memory, one subprocess per model (a fresh heap each): the peak RSS growth
during one forward + backward (``resource.ru_maxrss`` minus the RSS before
it) and the bytes autograd saves for backward (unique storages, via
``saved_tensors_hooks``: the activation memory, independent of the
allocator). Printed as ratios to ViT.

Usage:
    python benchmarks/trar_vit_cost.py [--batch 2] [--batch-384 1] [--reps 3]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

SETTINGS = {224: [0, 1, 2, 3], 384: [0, 1, 2]}
MODELS = ('vit', 'trar', 'perspan', 'naive')


def naive_mix(self, q, k, v, masks, alpha, dropout_p):
    """The reference formulation: materialise every span's map."""
    scores = q @ k.transpose(-2, -1) / q.size(-1)**0.5
    maps = []
    for mask in masks:
        s = scores if mask is None else scores.masked_fill(~mask, -1e9)
        maps.append(F.dropout(s.softmax(-1), dropout_p, self.training))
    att = torch.einsum('bl,blhnm->bhnm', alpha.to(q.dtype),
                       torch.stack(maps, 1))
    return att @ v


def build(name, size, arch='b'):
    from mmpretrain.models import VisionTransformer

    from mmext.models.backbones import TRARViT
    from mmext.models.layers import SpanRoutedAttention
    torch.manual_seed(0)
    if name == 'vit':
        return VisionTransformer(arch, img_size=size)
    if name == 'naive':
        SpanRoutedAttention._mix = naive_mix
    impl = 'auto' if name == 'trar' else 'per_span'
    return TRARViT(arch, img_size=size, orders=SETTINGS[size], attn_impl=impl)


def step(model, x):
    out = model(x)[0]
    (out * 1e-3).sum().backward()


def rss_mb():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def worker(name, size, batch, arch):
    """One model, one forward+backward: memory numbers as JSON."""
    torch.set_num_threads(torch.get_num_threads())
    model = build(name, size, arch)
    model.train()
    x = torch.randn(batch, 3, size, size)
    saved = {}

    def pack(t):
        if isinstance(t, torch.Tensor):
            s = t.untyped_storage()
            saved[s.data_ptr()] = s.nbytes()
        return t

    before = rss_mb()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step(model, x)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            dict(peak_mb=peak - before, saved_mb=sum(saved.values()) / 2**20)))


def memory(name, size, batch, arch):
    out = subprocess.run([
        sys.executable, __file__, '--worker', name, '--size',
        str(size), '--batch',
        str(batch), '--arch', arch
    ],
                         capture_output=True,
                         text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def timing(size, batch, reps, arch):
    from mmext.models.layers import SpanRoutedAttention
    fast_mix = SpanRoutedAttention._mix
    models = {}
    for name in MODELS:
        models[name] = build(name, size, arch)
        models[name].train()
        SpanRoutedAttention._mix = fast_mix
    vit_sd = models['vit'].state_dict()
    for name in MODELS[1:]:
        models[name].load_state_dict(vit_sd, strict=False)
        models[name].load_state_dict(models['trar'].state_dict())
    x = torch.randn(batch, 3, size, size)
    times = {name: [] for name in MODELS}
    for rep in range(reps + 1):  # the first round warms up
        # rotate the order each round: no model always runs after another
        names = MODELS[rep % 4:] + MODELS[:rep % 4]
        for name in names:
            SpanRoutedAttention._mix = naive_mix if name == 'naive' \
                else fast_mix
            t = time.perf_counter()
            step(models[name], x)
            if rep:
                times[name].append(time.perf_counter() - t)
            models[name].zero_grad(set_to_none=True)
    SpanRoutedAttention._mix = fast_mix
    return {name: min(ts) for name, ts in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=2, help='batch at 224')
    parser.add_argument('--batch-384', type=int, default=1)
    parser.add_argument('--reps', type=int, default=3)
    parser.add_argument('--arch', default='b', help="ViT arch ('b')")
    parser.add_argument(
        '--sizes', type=int, nargs='+', choices=[224, 384], default=[224, 384])
    parser.add_argument('--worker', choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument('--size', type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.size, args.batch, args.arch)

    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'ViT-{args.arch.upper()}/16, forward+backward (train mode), '
          f'load average {os.getloadavg()[0]:.1f}')
    for size in args.sizes:
        orders = SETTINGS[size]
        batch = args.batch if size == 224 else args.batch_384
        t0 = time.perf_counter()
        times = timing(size, batch, args.reps, args.arch)
        mem = {name: memory(name, size, batch, args.arch) for name in MODELS}
        print(f'\n{size} px, orders {orders}, batch {batch} '
              f'({time.perf_counter() - t0:.0f} s)')
        print(f'{"model":<8}{"time s":>9}{"x ViT":>8}{"peak MB":>10}'
              f'{"x ViT":>8}{"saved MB":>10}{"x ViT":>8}')
        for name in MODELS:
            m, v = mem[name], mem['vit']
            print(f'{name:<8}{times[name]:>9.2f}'
                  f'{times[name] / times["vit"]:>8.2f}'
                  f'{m["peak_mb"]:>10.0f}{m["peak_mb"] / v["peak_mb"]:>8.2f}'
                  f'{m["saved_mb"]:>10.0f}'
                  f'{m["saved_mb"] / v["saved_mb"]:>8.2f}')
        for ref in ('perspan', 'naive'):
            n, t = mem[ref], mem['trar']
            print(f'{ref} / trar: time {times[ref] / times["trar"]:.2f}, '
                  f'peak RSS {n["peak_mb"] / t["peak_mb"]:.2f}, saved '
                  f'activations {n["saved_mb"] / t["saved_mb"]:.2f}')


if __name__ == '__main__':
    main()
