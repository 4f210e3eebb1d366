# Copyright (c) mmext contributors. All rights reserved.
"""One ViLBERT pre-training step (MLM + ITM + contrastive MIM) at ViT-B/16 +
BERT-base sizes: time and memory, optionally next to the thesis model.

Both models: 12 + 12 layers, co-attention after text layers 6..11 and
vision layers 0..5, 8 heads, bi-hidden 1024, random weights (nothing is
downloaded), batch ``--batch`` of 224 px images and ``--text-len`` tokens,
AdamW, fp32 on CPU.

* ``mmext``: ``ViLBERT`` as configs/vilbert's pretraining config builds it;
  one step = ``model.loss`` (one forward for MLM + ITM, one for the masked
  view) + backward + optimizer step.
* ``thesis`` (with ``--reference-repo PATH``, a checkout of cesipy/bsc-code;
  needs ``timm``): its ``ViLBERT`` with ``BertModel.from_pretrained`` /
  timm's ``pretrained=True`` replaced by random initialisation; one step =
  its trainer's three batches (alignment, MLM, MIM with two forwards), each
  backpropagated, then the optimizer step.

Time: the fastest of ``--reps`` steps after one warm-up step. Memory, one
fresh subprocess per model: parameters, and the peak RSS growth of a step
(``ru_maxrss`` after the step minus the RSS before it).

Usage:
    python benchmarks/vilbert_step.py [--batch 4] [--text-len 36] [--reps 3]
        [--reference-repo ../bsc-code]
"""
import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time
import types

import torch
import torch.nn.functional as F


def _rss_mb():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def _batch(b, t, vocab=30522, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, vocab, (b, t), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    labels = torch.full((b, t), -100)
    sel = torch.rand(b, t, generator=g) < 0.15
    sel[:, [0, -1]] = False
    labels[sel] = ids[sel]
    ids = ids.masked_fill(sel, 103)
    return dict(
        input_ids=ids,
        attention_mask=torch.ones(b, t, dtype=torch.long),
        mlm_labels=labels,
        itm_labels=torch.randint(0, 2, (b, ), generator=g),
        img=torch.randn(b, 3, 224, 224, generator=g),
        img_masked=torch.randn(b, 3, 224, 224, generator=g),
        patch_mask=torch.rand(b, 196, generator=g) < 0.1)


def build_mmext():
    from mmext.registry import MODELS
    from mmext.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='ViLBERT',
            text=dict(config={}),  # bert-base-uncased sizes
            visual=dict(
                type='PatchVisualStream',
                embed_dims=768,
                backbone=dict(
                    type='VisionTransformer',
                    arch='b',
                    img_size=224,
                    patch_size=16,
                    final_norm=False)),
            coattention=dict(
                preset='thesis', bi_dims=1024, num_heads=8, norm='pre')))

    def step(x):
        losses = model.loss(x)
        sum(losses.values()).backward()

    return model, step


def build_thesis(repo):
    """The thesis ViLBERT from a local checkout, randomly initialised."""
    src = osp.join(repo, 'src')
    if not osp.isfile(osp.join(src, 'vilbert.py')):
        raise SystemExit(f'--reference-repo {repo}: no src/vilbert.py; give '
                         'a checkout of github.com/cesipy/bsc-code')
    try:
        import timm
    except ImportError:
        raise SystemExit('the thesis model needs timm: pip install timm')
    from transformers import BertConfig, BertModel

    # the user's thesis checkout (an external reference repo, not mmext)
    sys.path.insert(0, src)
    # its data / plotting modules are not needed for the model: stubs
    gelu = types.SimpleNamespace(
        GeLU=lambda: torch.nn.GELU(approximate='none'))
    sys.modules['utils'] = types.ModuleType('utils')
    sys.modules['utils'].__dict__.update(vars(gelu))
    for name in ('datasets', 'logger'):
        stub = types.ModuleType(name)
        stub.MM_IMDB_Dataset = stub.Logger = object
        sys.modules[name] = stub
    BertModel.from_pretrained = classmethod(
        lambda cls, *a, **k: cls(BertConfig()))
    create = timm.create_model
    timm.create_model = lambda *a, **k: create(*a, **dict(k, pretrained=False))
    import socket
    hostname = socket.gethostname
    # its config.py parses the host name as a cluster GPU node
    socket.gethostname = lambda: 'c703i-gpu0'
    try:
        import config as bcfg
        import vilbert as bvil
    finally:
        socket.gethostname = hostname
    torch.manual_seed(0)
    model = bvil.ViLBERT(bcfg.ViLBERTConfig())

    def step(x):
        kw = dict(
            text_input_ids=x['input_ids'],
            text_attention_mask=x['attention_mask'])
        t_cls, _ = model.forward_pretrain(
            image_pixel_values=x['img'], tasks=['alignment_prediction'], **kw)
        F.binary_cross_entropy_with_logits(
            model.alignment_fc(t_cls).squeeze(1),
            x['itm_labels'].float()).backward()
        t_seq, _ = model.forward_pretrain(
            image_pixel_values=x['img'], tasks=['mlm'], **kw)
        F.cross_entropy(
            model.mlm(t_seq).flatten(0, 1),
            x['mlm_labels'].flatten()).backward()
        _, v_masked = model.forward_pretrain(
            image_pixel_values=x['img_masked'], tasks=['mim'], **kw)
        _, v_plain = model.forward_pretrain(
            image_pixel_values=x['img'], tasks=['mim'], **kw)
        sel = torch.cat(
            [torch.ones_like(x['patch_mask'][:, :1]), ~x['patch_mask']], 1)
        q = F.normalize(v_masked[sel], dim=-1)
        k = F.normalize(v_plain[sel], dim=-1)
        F.cross_entropy(q @ k.t() / 0.1, torch.arange(len(q))).backward()

    return model, step


def measure(which, args):
    """Run in a fresh process: JSON with params, step seconds, peak MB."""
    model, step = (
        build_mmext()
        if which == 'mmext' else build_thesis(args.reference_repo))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                            lr=1e-4,
                            weight_decay=0.01)
    x = _batch(args.batch, args.text_len)
    params = sum(p.numel() for p in model.parameters())
    before = _rss_mb()
    times = []
    for i in range(args.reps + 1):
        t0 = time.perf_counter()
        step(x)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:  # the first step allocates optimizer state: warm-up
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(
        model=which,
        params_m=params / 1e6,
        step_s=min(times),
        peak_rss_growth_mb=peak - before,
        peak_rss_mb=peak)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument(
        '--text-len',
        type=int,
        default=36,
        help='tokens per caption (the thesis pads to 197)')
    parser.add_argument('--reps', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument(
        '--reference-repo',
        help='checkout of cesipy/'
        'bsc-code for the side-by-side run')
    parser.add_argument('--only', help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.only:
        print(json.dumps(measure(args.only, args)))
        return
    names = ['mmext'] + (['thesis'] if args.reference_repo else [])
    rows = []
    for name in names:
        cmd = [sys.executable,
               osp.abspath(__file__), '--only', name
               ] + [a for a in sys.argv[1:]]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f'{name} failed:\n{out.stderr[-3000:]}')
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f'batch {args.batch}, {args.text_len} tokens, 224 px, '
          f'{args.threads} threads, fastest of {args.reps} steps')
    print(f'{"model":8} {"params (M)":>11} {"step (s)":>9} '
          f'{"peak RSS growth (MB)":>21}')
    for r in rows:
        print(f'{r["model"]:8} {r["params_m"]:11.1f} {r["step_s"]:9.2f} '
              f'{r["peak_rss_growth_mb"]:21.0f}')
    if len(rows) == 2:
        a, b = rows
        mem = a['peak_rss_growth_mb'] / b['peak_rss_growth_mb']
        print(f'mmext / thesis: time {a["step_s"] / b["step_s"]:.2f}x, '
              f'parameters {a["params_m"] / b["params_m"]:.2f}x, peak '
              f'memory {mem:.2f}x')


if __name__ == '__main__':
    main()
