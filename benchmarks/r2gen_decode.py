# Copyright (c) mmext contributors. All rights reserved.
"""R2Gen decoding: mmext's incremental search vs R2Gen's own, side by side.

Same weights, R2Gen's dimensions (d_model 512, d_ff 512, 3 layers, 8 heads,
3 memory slots, vocabulary 760 + 1 rows = the released IU X-ray checkpoint,
98 visual tokens of 2048 = two ResNet-101 views), batch 8, beam 3 and greedy
(R2Gen's trigram blocking), max length 60, random weights. Random weights
rarely emit EOS, so EOS is disabled (its logit bias set to -1e4) and every
search runs all 60 steps: the worst case, not an early exit.

* mmext: batched search over an incremental state (cached self-attention
  keys/values, encoder keys/values projected once per study, the relational
  memory carried);
* R2Gen (``--reference-repo``, a checkout of zhjohnchan/R2Gen, e.g. from
  ``git clone``; nothing of it is copied here): its ``EncoderDecoder`` with
  the same weights and its own ``_sample`` (per-study beam bookkeeping, the
  whole prefix re-run through memory and decoder every step), with its
  ``.cuda()`` calls made no-ops. Times are the fastest of ``--reps``
  interleaved runs; the tokens must be identical (asserted).

Also printed: mmext's own full-prefix state (R2Gen's O(T^2) scheme on the
same batched search) vs incremental on ``--full-batch`` studies, the time of
each part of one beam step, and the fp32 weight bytes one step reads: with
24 rows a step streams every decoding weight once (~115 MB, 72 MB of them in
the 18 MCLN MLPs), so its time is bounded by memory bandwidth, not FLOPs.

Then the training step time (forward + backward + Adam, ``--train-batch``
studies, default 1) of every configs/r2gen config at full size (224 px, real
backbones, random init).

Usage:
    python benchmarks/r2gen_decode.py [--reference-repo PATH] [--batch 8]
        [--beam 3] [--max-len 60] [--reps 1] [--full-batch 2] [--threads 1]
        [--no-train] [--train-batch 1]
"""
import argparse
import glob
import logging
import os
import os.path as osp
import sys
import time
from types import SimpleNamespace

import torch

from mmext.models.multimodal.r2gen import R2GenHead
from mmext.utils import register_all_modules

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def reference_model(repo, head, max_len):
    """R2Gen's ``EncoderDecoder`` from a checkout of zhjohnchan/R2Gen, with
    ``head``'s weights (same key names; its ``pe`` buffer is recomputed)."""
    # the user's R2Gen checkout (an external reference repo, not mmext)
    sys.path.insert(0, repo)
    from modules.encoder_decoder import EncoderDecoder
    args = SimpleNamespace(
        d_model=512,
        d_ff=512,
        d_vf=2048,
        num_layers=3,
        num_heads=8,
        dropout=0.1,
        drop_prob_lm=0.5,
        rm_num_slots=3,
        rm_num_heads=8,
        rm_d_model=512,
        max_seq_length=max_len,
        bos_idx=0,
        eos_idx=0,
        pad_idx=0,
        use_bn=0,
        sample_method='beam_search',
        beam_size=3,
        temperature=1.0,
        sample_n=1,
        group_size=1,
        output_logsoftmax=1,
        decoding_constraint=0,
        block_trigrams=1)
    tokenizer = SimpleNamespace(
        idx2token={i: f'w{i}'
                   for i in range(1, head.vocab_size + 1)})
    ref = EncoderDecoder(args, tokenizer).eval()
    missing, unexpected = ref.load_state_dict(head.state_dict(), strict=False)
    assert not unexpected and missing == ['model.tgt_embed.1.pe'], missing
    return ref


def run_reference(ref, feats, strategy, beam):
    """R2Gen's own search (``_sample``); its ``.cuda()`` calls are no-ops."""
    ref.args.sample_method = 'beam_search' if strategy == 'beam' else \
        'greedy'
    ref.args.beam_size = beam if strategy == 'beam' else 1
    cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        with torch.no_grad():
            seq, _ = ref(
                feats.new_zeros(len(feats), 4096), feats, mode='sample')
    finally:
        torch.Tensor.cuda = cuda
    return seq


def step_breakdown(head, feats, beam, t_mid):
    """ms per call of each part of one incremental beam step at t_mid."""
    from mmext.models.multimodal.r2gen.r2gen_head import IncrementalDecodeState
    model = head.model
    state = IncrementalDecodeState(head, head.encode(feats), beam)
    n = len(feats) * beam
    prefix = torch.zeros(n, 1, dtype=torch.long)
    with torch.no_grad():
        for _ in range(t_mid):
            prefix = torch.cat(
                [prefix, state.step(prefix).argmax(-1, True)], 1)
        y = model.embed(prefix[:, -1:], offset=t_mid)
        memory = state.memory.unsqueeze(1)
        norms = [
            sub.norm for layer in model.decoder.layers
            for sub in layer.sublayer
        ]
        index = torch.arange(n).flip(0)

        def layers():
            x = y
            for layer, cache, src_kv in zip(model.decoder.layers, state.caches,
                                            state.src_kv):
                x = layer.forward_step(x, dict(cache), src_kv, None, memory)
            return x

        parts = {
            'whole step':
            lambda: (model.rm.forward_step(y[:, 0], state.memory), layers(),
                     torch.log_softmax(head.logit(y[:, 0]), -1)),
            'relational memory step':
            lambda: model.rm.forward_step(y[:, 0], state.memory),
            'decoder layers (3)':
            layers,
            '  of which MCLN MLPs (18)':
            lambda: [(norm.mlp_gamma(memory), norm.mlp_beta(memory))
                     for norm in norms],
            'logit + log-softmax':
            lambda: torch.log_softmax(head.logit(y[:, 0]), -1),
            'beam reorder (caches)':
            lambda: [c[k][index] for c in state.caches for k in c],
        }
        times = {}
        for name, fn in parts.items():
            fn()
            times[name] = min(_timed(fn)[1] for _ in range(5)) * 1e3
    weights = {
        'MCLN MLPs':
        sum(p.numel() for norm in norms
            for m in (norm.mlp_gamma, norm.mlp_beta) for p in m.parameters()),
        'all decoding weights':
        sum(p.numel() for name, p in head.named_parameters()
            if not name.startswith(('att_embed', 'model.encoder',
                                    'model.tgt_embed'))),
    }
    return times, weights


def bench_decode(args):
    torch.manual_seed(0)
    head = R2GenHead(vocab_size=760).eval()  # R2Gen's defaults
    with torch.no_grad():
        head.logit.bias[0] = -1e4  # never EOS: every search runs max_len
    feats = torch.randn(args.batch, 98, 2048)
    sub = feats[:args.full_batch]
    beam = dict(max_len=args.max_len, strategy='beam', beam_size=args.beam)
    # R2Gen's greedy blocks trigrams with ln(1/2) * 2 written as 0.693 * 2
    greedy = dict(
        max_len=args.max_len,
        strategy='greedy',
        block_trigrams=True,
        trigram_penalty=0.693 * 2)
    ref = reference_model(args.reference_repo, head, args.max_len) \
        if args.reference_repo else None
    print(f'decode: batch {args.batch}, beam {args.beam} and greedy, '
          f'max length {args.max_len}, d_model 512, 3 layers, 8 heads, 3 '
          'memory slots, vocab 761 rows, 98 visual tokens of 2048; EOS '
          'disabled (random weights): every search runs all steps')
    results = {}
    for name, kw in (('beam', beam), ('greedy', greedy)):
        times = dict(mmext=[], reference=[])
        for rep in range(args.reps):
            # interleaved, alternating which goes first
            order = ['mmext', 'reference'] if rep % 2 == 0 else \
                ['reference', 'mmext']
            for who in order:
                if who == 'mmext':
                    ours, t = _timed(lambda: head.generate(feats, **kw))
                elif ref is not None:
                    theirs, t = _timed(
                        lambda: run_reference(ref, feats, name, args.beam))
                else:
                    continue
                times[who].append(t)
        t_ours = min(times['mmext'])
        rows = args.batch * (args.beam if name == 'beam' else 1)
        per_token = t_ours / args.max_len / args.batch * 1e3
        line = (f'  {name:6s} mmext {t_ours:6.2f} s = '
                f'{t_ours / args.max_len * 1e3:5.1f} ms per step '
                f'({rows} rows), {per_token:5.2f} ms per study-token')
        if ref is not None:
            t_ref = min(times['reference'])
            same = torch.equal(ours, theirs[:, :args.max_len])
            line += (f'; R2Gen {t_ref:6.2f} s: {t_ref / t_ours:5.1f}x, '
                     f'tokens identical: {same}')
            results[name] = (t_ref / t_ours, same)
        print(line)
    full, t_full = _timed(
        lambda: head.generate(sub, incremental=False, **beam))
    inc, t_inc = _timed(lambda: head.generate(sub, **beam))
    assert torch.equal(full, inc), 'incremental and full-prefix differ'
    print(f'  full-prefix recompute (mmext, R2Gen\'s O(T^2) scheme), beam, '
          f'batch {args.full_batch}: {t_full:.2f} s vs incremental '
          f'{t_inc:.2f} s: {t_full / t_inc:.1f}x, tokens identical')
    parts, weights = step_breakdown(head, feats, args.beam, args.max_len // 2)
    print(f'  one beam step at t = {args.max_len // 2} '
          f'({args.batch * args.beam} rows), ms per call:')
    for name, ms in parts.items():
        print(f'    {name:28s} {ms:6.2f}')
    mb = {k: v * 4 / 2**20 for k, v in weights.items()}
    print(f'  weights read per step: {mb["all decoding weights"]:.0f} MB '
          f'fp32 ({mb["MCLN MLPs"]:.0f} MB in the MCLN MLPs) for '
          f'{args.batch * args.beam} rows: '
          f'{mb["all decoding weights"] / parts["whole step"]:.1f} GB/s '
          'at the whole-step time')
    for name, (ratio, same) in results.items():
        target = 20 if name == 'beam' else 10
        print(f'  {name}: {ratio:.1f}x R2Gen (target >= {target}x), '
              f'tokens identical: {same}')
    if results:
        assert all(same for _, same in results.values()), \
            'mmext and R2Gen tokens differ'


def bench_train(args):
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper
    from mmpretrain.structures import DataSample

    from mmext.registry import MODELS
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
            s.set_field(
                torch.cat([
                    torch.tensor([0]),
                    torch.randint(1, 761, (40, ), generator=g),
                    torch.tensor([0])
                ]),
                'gt_tokens',
                field_type='data')
            samples.append(s)
        data = dict(
            inputs=[
                torch.randint(
                    0,
                    256, (views, 3, size, size),
                    dtype=torch.uint8,
                    generator=g) for _ in range(args.train_batch)
            ],
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
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--beam', type=int, default=3)
    p.add_argument('--max-len', type=int, default=60)
    p.add_argument(
        '--full-batch',
        type=int,
        default=2,
        help='studies decoded by the (slow) full-prefix search')
    p.add_argument(
        '--threads',
        type=int,
        default=1,
        help='torch threads (1 is fastest on a shared machine)')
    p.add_argument(
        '--reference-repo',
        help='checkout of zhjohnchan/R2Gen: time its own search '
        'side by side on the same weights')
    p.add_argument(
        '--reps',
        type=int,
        default=1,
        help='interleaved repetitions (fastest kept)')
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
