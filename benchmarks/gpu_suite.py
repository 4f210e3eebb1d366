# Copyright (c) mmext contributors. All rights reserved.
"""Every mmext system at real sizes on one device: one table and a JSON.

Rows (each: seconds of the fastest timed repetition after a warm-up, the
throughput, a ratio where the row has a comparison, and peak memory):

* ``vilbert``: one ViLBERT pre-training step (MLM + ITM + masked view,
  AdamW) at ViT-B/16 + BERT-base sizes, fp32 and AMP (fp16 with a
  GradScaler on CUDA, bf16 on CPU), as ``benchmarks/vilbert_step.py``
  builds it;
* ``trar``: TRAR-ViT-B/16 vs mmpretrain's ViT-B/16 training throughput
  (forward + backward) at 224 and 384 px (``benchmarks/trar_vit_cost.py``);
* ``flowers``: the Flowers ViT-B/16 fine-tune config (PartialFreeze, layer
  decay) vs the same classifier built by mmpretrain, images/s of a full
  optimizer step (``benchmarks/flowers_throughput.py``);
* ``r2gen``: R2Gen report decoding, beam 3, batch 64, reports/s, and the
  reference's own search with ``--r2gen-repo`` (``benchmarks/r2gen_decode``);
* ``butd``: BUTD region extraction at 600 px, images/s, fp32 and its
  ``--precision`` (convs in fp16 on CUDA, bf16 on CPU), the fused model.

Peak memory: ``torch.cuda.max_memory_allocated`` per row on CUDA; on CPU
the process's peak RSS (``ru_maxrss``, cumulative over the rows run so
far). ``--smoke`` runs the same code with tiny widths, batches and decode
lengths (image sizes stay real where cheap) so the test suite proves the
script works before a GPU sees it. The builders come from the other
benchmark scripts and :mod:`mmext.testing`; nothing is copied here.

Usage:
    python benchmarks/gpu_suite.py [--device cuda] [--json out.json]
        [--rows vilbert trar flowers r2gen butd] [--r2gen-repo PATH]
    python benchmarks/gpu_suite.py --smoke --device cpu
"""
import argparse
import contextlib
import copy
import json
import os
import os.path as osp
import resource
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
ROWS = ('vilbert', 'trar', 'flowers', 'r2gen', 'butd')
FLOWERS_VIT = osp.join(ROOT, 'configs/flowers/vit-base-p16_1xb32-ft_'
                       'flowers17.py')


def _amp(device):
    """Autocast for ``device``: fp16 on CUDA, bf16 on CPU."""
    dtype = torch.float16 if device.type == 'cuda' else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def _amp_name(device):
    return 'amp fp16' if device.type == 'cuda' else 'amp bf16'


def measure(fn, device, reps):
    """(fastest seconds of ``reps`` calls after one warm-up, peak MB)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(reps + 1):
        start = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - start)
    if device.type == 'cuda':
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return min(times), peak


def _row(system,
         variant,
         size,
         seconds,
         items,
         unit,
         peak,
         ratio=None,
         ratio_to=None):
    return dict(
        system=system,
        variant=variant,
        size=size,
        seconds=seconds,
        throughput=items / seconds,
        unit=unit,
        ratio=ratio,
        ratio_to=ratio_to,
        peak_mb=peak)


def bench_vilbert(args, device):
    import vilbert_step
    if args.smoke:
        from mmext.testing.bert import make_bert_folder
        from mmext.testing.vilbert import fixed_batch, tiny_vilbert
        from mmext.utils import register_all_modules
        register_all_modules()
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as tmp:
            model = tiny_vilbert(make_bert_folder(tmp))
        batch, size = fixed_batch(), '32 px, 7 tokens, batch 4'
    else:
        model, _ = vilbert_step.build_mmext()
        b = args.vilbert_batch
        batch = vilbert_step._batch(b, 36)
        size = f'224 px, 36 tokens, batch {b}'
    model.to(device).train()
    batch = {k: v.to(device) for k, v in batch.items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                            lr=1e-4)
    rows = []
    for amp in (False, True):
        scaler = torch.amp.GradScaler(
            device.type, enabled=amp and device.type == 'cuda')

        def step():
            with _amp(device) if amp else contextlib.nullcontext():
                loss = sum(model.loss(batch).values())
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)

        t, peak = measure(step, device, args.reps)
        ratio = rows[0]['seconds'] / t if rows else None
        rows.append(
            _row('ViLBERT pretrain step',
                 _amp_name(device) if amp else 'fp32', size, t, 1, 'steps/s',
                 peak, ratio, 'speed-up vs fp32' if amp else None))
    return rows


def bench_trar(args, device):
    import trar_vit_cost

    from mmext.testing.tiny_models import TINY_ARCH
    arch = TINY_ARCH if args.smoke else 'b'
    rows = []
    for size, batch in ((224, args.trar_batch), (384, args.trar_batch_384)):
        x = torch.randn(batch, 3, size, size, device=device)
        vit_t = None
        for name in ('vit', 'trar'):
            model = trar_vit_cost.build(name, size, arch).to(device)
            model.train()  # mmpretrain's ViT.train returns None
            t, peak = measure(
                lambda m=model: trar_vit_cost.step(m, x), device, args.reps)
            label = 'TRAR-ViT-B/16' if name == 'trar' else 'ViT-B/16 (mmpre)'
            rows.append(
                _row('TRAR vs ViT train', label, f'{size} px, batch {batch}',
                     t, batch, 'images/s', peak, t / vit_t if vit_t else None,
                     'time vs ViT-B/16' if vit_t else None))
            vit_t = vit_t or t
            del model
    return rows


def bench_flowers(args, device):
    import flowers_throughput
    from mmengine.logging import MMLogger

    from mmext.testing.tiny_models import TINY_ARCH
    from mmext.utils import register_all_modules
    register_all_modules()
    MMLogger.get_current_instance().setLevel('WARNING')
    cfg, model_cfg, _ = flowers_throughput.load(FLOWERS_VIT, 224)
    if args.smoke:
        model_cfg['backbone']['backbone']['arch'] = TINY_ARCH
        model_cfg['head']['in_channels'] = TINY_ARCH['embed_dims']
    (ours, ow), (ref, rw) = flowers_throughput.build_pair(cfg, model_cfg)
    b = args.flowers_batch
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(b, 3, 224, 224, generator=gen).to(device)
    y = torch.randint(0, 17, (b, ), generator=gen).to(device)
    rows = []
    for label, model, wrapper in (('mmext config', ours, ow), ('mmpretrain',
                                                               ref, rw)):
        model.to(device).train()
        t, peak = measure(
            lambda: flowers_throughput.step(model, wrapper, x, y), device,
            args.reps)
        rows.append(
            _row('Flowers ViT-B/16 fine-tune', label, f'224 px, batch {b}', t,
                 b, 'images/s', peak))
    rows[0].update(
        ratio=rows[1]['seconds'] / rows[0]['seconds'],
        ratio_to='speed vs mmpretrain')
    return rows


def _reference_search(ref, feats, beam, device):
    import r2gen_decode
    if device.type == 'cpu':  # its .cuda() calls become no-ops
        return r2gen_decode.run_reference(ref, feats, 'beam', beam)
    ref.args.sample_method, ref.args.beam_size = 'beam_search', beam
    with torch.no_grad():
        return ref(feats.new_zeros(len(feats), 4096), feats, mode='sample')[0]


def bench_r2gen(args, device):
    from mmext.models.multimodal.r2gen import R2GenHead
    from mmext.testing.tiny_models import TINY_R2GEN_HEAD
    torch.manual_seed(0)
    if args.smoke:
        kw = {k: v for k, v in TINY_R2GEN_HEAD.items() if k != 'type'}
        head, batch, max_len, dims = R2GenHead(**kw), 4, 6, 32
    else:  # R2Gen's IU X-ray dimensions, 98 tokens = two ResNet-101 views
        head, batch, max_len, dims = R2GenHead(vocab_size=760), 64, 60, 2048
    head.to(device).eval()
    with torch.no_grad():
        head.logit.bias[0] = -1e4  # never EOS: every search runs max_len
    feats = torch.randn(batch, 98, dims, device=device)
    search = dict(max_len=max_len, strategy='beam', beam_size=3)
    with torch.no_grad():
        t, peak = measure(lambda: head.generate(feats, **search), device,
                          args.reps)
    size = f'batch {batch}, beam 3, {max_len} steps'
    rows = [_row('R2Gen decode', 'mmext', size, t, batch, 'reports/s', peak)]
    if args.r2gen_repo:
        import r2gen_decode
        ref = r2gen_decode.reference_model(args.r2gen_repo, head, max_len)
        ref.to(device)
        t_ref, peak = measure(lambda: _reference_search(ref, feats, 3, device),
                              device, args.reps)
        rows.append(
            _row('R2Gen decode', 'R2Gen reference', size, t_ref, batch,
                 'reports/s', peak))
        rows[0].update(ratio=t_ref / t, ratio_to='speed vs R2Gen')
    return rows


def bench_butd(args, device):
    from mmext.models.detectors import BUTDFasterRCNN
    from mmext.models.detectors.butd.fuse import (convs_to_half,
                                                  fuse_for_inference)
    from mmext.testing.tiny_models import TINY_BUTD
    torch.manual_seed(0)
    if args.smoke:
        cfg = {k: v for k, v in TINY_BUTD.items() if k != 'type'}
        model, hw = BUTDFasterRCNN(**cfg), (64, 96)
    else:
        model, hw = BUTDFasterRCNN(), (600, 800)
    model = fuse_for_inference(
        model.eval(), inplace=True, channels_last=True).to(device)
    img = np.random.RandomState(0).randint(0, 256, (*hw, 3), dtype=np.uint8)
    rows = []
    # extraction's --precision: half-precision convs, the RPN, heads and
    # selection in fp32 (a blanket autocast would run those in half too)
    for precision in ('fp32', 'fp16' if device.type == 'cuda' else 'bf16'):
        model = convs_to_half(model, precision)

        def run(model=model):
            with torch.no_grad():
                model.predict_image(img)

        t, peak = measure(run, device, args.reps)
        ratio = rows[0]['seconds'] / t if rows else None
        rows.append(
            _row('BUTD extraction',
                 precision if precision == 'fp32' else f'{precision} convs',
                 f'{hw[0]}x{hw[1]} px', t, 1, 'images/s', peak, ratio,
                 'speed-up vs fp32' if rows else None))
    return rows


BENCHES = dict(
    vilbert=bench_vilbert,
    trar=bench_trar,
    flowers=bench_flowers,
    r2gen=bench_r2gen,
    butd=bench_butd)


def format_table(rows, device):
    head = (f'{"system":<27}{"variant":<18}{"size":<28}{"seconds":>9}'
            f'{"throughput":>19}{"ratio":>8}  {"peak MB":>8}')
    lines = [head, '-' * len(head)]
    for r in rows:
        ratio = f'{r["ratio"]:.2f}x' if r['ratio'] else ''
        thr = f'{r["throughput"]:.2f} {r["unit"]}'
        lines.append(f'{r["system"]:<27}{r["variant"]:<18}{r["size"]:<28}'
                     f'{r["seconds"]:>9.3f}{thr:>19}{ratio:>8}  '
                     f'{r["peak_mb"]:>8.0f}  {r["ratio_to"] or ""}')
    kind = ('torch.cuda.max_memory_allocated per row' if device.type == 'cuda'
            else 'process peak RSS (cumulative over rows)')
    lines.append(f'peak MB: {kind}; load average {os.getloadavg()[0]:.2f}')
    return '\n'.join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--smoke', action='store_true', help='tiny sizes (tests)')
    p.add_argument('--rows', nargs='+', choices=ROWS, default=list(ROWS))
    p.add_argument('--reps', type=int, help='timed repetitions (3; smoke 1)')
    p.add_argument('--vilbert-batch', type=int, default=32)
    p.add_argument('--trar-batch', type=int, help='at 224 (64; smoke 1)')
    p.add_argument('--trar-batch-384', type=int, help='(16; smoke 1)')
    p.add_argument('--flowers-batch', type=int, help='(32; smoke 2)')
    p.add_argument('--r2gen-repo', help='checkout of zhjohnchan/R2Gen')
    p.add_argument('--threads', type=int, help='torch CPU threads')
    p.add_argument('--json', help='write the rows here')
    args = p.parse_args(argv)
    small = dict(reps=1, trar_batch=1, trar_batch_384=1, flowers_batch=2)
    full = dict(reps=3, trar_batch=64, trar_batch_384=16, flowers_batch=32)
    for key, value in (small if args.smoke else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for name in args.rows:
        start = time.perf_counter()
        rows += BENCHES[name](args, device)
        print(f'[{name}: {time.perf_counter() - start:.1f} s]', flush=True)
    print(format_table(rows, device))
    if args.json:
        meta = dict(
            device=str(device),
            smoke=args.smoke,
            torch=torch.__version__,
            threads=torch.get_num_threads(),
            load_average=os.getloadavg()[0])
        with open(args.json, 'w') as f:
            json.dump(dict(meta=meta, rows=copy.deepcopy(rows)), f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
