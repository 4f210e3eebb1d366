# Copyright (c) mmext contributors. All rights reserved.
"""R2Gen decoding: incremental batched beam search vs full-prefix recompute.

Same weights, R2Gen's dimensions (d_model 512, d_ff 512, 3 layers, 8 heads,
3 memory slots, vocabulary 760 + 1 rows = the released IU X-ray checkpoint,
98 visual tokens of 2048 = two ResNet-101 views), batch 16, beam 3, max
length 60, random weights:

* full prefix: at every step the relational memory and the decoder re-run
  over the whole prefix (R2Gen's ``core``), O(T^2) per sequence;
* incremental: cached self-attention keys/values per layer, encoder key/value
  projections computed once, the relational-memory state carried, O(T).

Both use the same batched search, so the tokens must be identical (asserted)
and the speed-up is the decoder's alone. Random weights rarely emit EOS, so
EOS is disabled (its logit bias set to -1e4) and both run the full 60 steps:
what is timed is the worst case, not an early exit.

The full-prefix search is timed on ``--full-batch`` (default 2) of the 16
studies so the script stays within 3 minutes on a shared 2-core machine;
the incremental search is timed on both, and the tokens are compared on
those studies. ``--full-batch 16`` runs the whole comparison (~5 min).

Then the training step time (forward + backward + Adam, ``--train-batch``
studies, default 1) of every configs/r2gen config at full size (224 px, real
backbones, random init).

Usage:
    python benchmarks/r2gen_decode.py [--batch 16] [--beam 3] [--max-len 60]
        [--full-batch 2] [--threads 1] [--no-train] [--train-batch 1]
"""
import argparse
import glob
import logging
import os
import os.path as osp
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from mmext.models.report import R2GenHead  # noqa: E402
from mmext.utils import register_all_modules  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_decode(args):
    torch.manual_seed(0)
    head = R2GenHead(vocab_size=760).eval()  # R2Gen's defaults
    with torch.no_grad():
        head.logit.bias[0] = -1e4  # never EOS: both run max_len steps
    feats = torch.randn(args.batch, 98, 2048)
    sub = feats[:args.full_batch]
    kw = dict(max_len=args.max_len, strategy='beam', beam_size=args.beam)
    inc, t_inc = _timed(lambda: head.generate(feats, **kw))
    inc_sub, t_inc_sub = _timed(lambda: head.generate(sub, **kw))
    full, t_full = _timed(
        lambda: head.generate(sub, incremental=False, **kw))
    same = torch.equal(full, inc_sub) and torch.equal(
        full, inc[:args.full_batch])
    lengths = (inc != 0).sum(1)
    print(f'decode: beam {args.beam}, max length {args.max_len}, d_model '
          '512, 3 layers, vocab 761 rows, 98 visual tokens of 2048; EOS '
          'disabled (random weights), so every search runs the full '
          f'{lengths.min().item()}-{lengths.max().item()} steps')
    rows = [(f'incremental, batch {args.batch}', t_inc, args.batch),
            (f'incremental, batch {args.full_batch}', t_inc_sub,
             args.full_batch),
            (f'full prefix, batch {args.full_batch}', t_full,
             args.full_batch)]
    for name, t, n in rows:
        print(f'  {name:26s} {t:7.2f} s  ({t / n:6.2f} s per study)')
    print(f'  tokens identical (full prefix vs incremental, batch '
          f'{args.full_batch} and within batch {args.batch}): {same}')
    print(f'  speed-up at equal batch {args.full_batch}: '
          f'{t_full / t_inc_sub:.1f}x; per study, incremental batch '
          f'{args.batch} vs full prefix: '
          f'{(t_full / args.full_batch) / (t_inc / args.batch):.1f}x '
          '(target >= 5x)')
    if args.full_batch < args.batch:
        print(f'  (full prefix timed on {args.full_batch} of the {args.batch}'
              ' studies to stay within 3 minutes; --full-batch '
              f'{args.batch} times all of them)')
    assert same, 'incremental and full-prefix decoding differ'


def bench_train(args):
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper

    from mmext.registry import MODELS
    from mmpretrain.structures import DataSample
    register_all_modules()
    # mmengine logs one line per parameter group option; keep the table
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    vocab = ['<unk>'] + [f'w{i}' for i in range(759)]
    print(f'training step (forward + backward + Adam), batch '
          f'{args.train_batch} studies at 224 px, random init, mean of '
          f'{args.train_steps} step(s) after {args.warmup} warm-up:')
    for path in sorted(glob.glob(osp.join(ROOT, 'configs/r2gen/*.py'))):
        cfg = Config.fromfile(path)
        model_cfg = cfg.model
        model_cfg.tokenizer = dict(type='R2GenTokenizer', vocab=vocab)
        backbone = model_cfg.backbone
        backbone = backbone.get('backbone', backbone)
        backbone.init_cfg = None
        model = MODELS.build(model_cfg)
        model.train()
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
        size = 64 if 'tiny' in path else 224
        views = 1 if 'mimic' in path else 2
        g = torch.Generator().manual_seed(0)
        samples = []
        for _ in range(args.train_batch):
            s = DataSample()
            s.set_field(torch.cat([torch.tensor([0]),
                                   torch.randint(1, 761, (40, ), generator=g),
                                   torch.tensor([0])]), 'gt_tokens',
                        field_type='data')
            samples.append(s)
        data = dict(inputs=[torch.randint(0, 256, (views, 3, size, size),
                                          dtype=torch.uint8, generator=g)
                            for _ in range(args.train_batch)],
                    data_samples=samples)
        for _ in range(args.warmup):
            model.train_step(data, optim)
        start = time.perf_counter()
        for _ in range(args.train_steps):
            model.train_step(data, optim)
        step = (time.perf_counter() - start) / args.train_steps
        trainable = sum(p.numel() for p in model.parameters()
                        if p.requires_grad)
        print(f'  {osp.basename(path):38s} {step:6.2f} s/step  '
              f'({trainable / 1e6:6.1f} M trainable)')


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--beam', type=int, default=3)
    p.add_argument('--max-len', type=int, default=60)
    p.add_argument('--full-batch', type=int, default=2,
                   help='studies decoded by the (slow) full-prefix search')
    p.add_argument('--threads', type=int, default=1,
                   help='torch threads (1 is fastest on a shared machine)')
    p.add_argument('--no-train', action='store_true')
    p.add_argument('--train-batch', type=int, default=1)
    p.add_argument('--train-steps', type=int, default=1)
    p.add_argument('--warmup', type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'load average {os.getloadavg()[0]:.1f}')
    bench_decode(args)
    if not args.no_train:
        bench_train(args)


if __name__ == '__main__':
    main()
