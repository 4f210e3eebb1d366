# Copyright (c) mmext contributors. All rights reserved.
"""BUTD region extraction on CPU: images/s and memory, per stage.

Builds the full ``BUTDFasterRCNN`` (ResNet-101, 1601 classes, 401
attributes) with random weights (the timing does not depend on the values;
pass ``--checkpoint`` for converted weights), runs it on random images
whose shorter side is 600 px (the test scale, no resize) and times

* preprocess: mean subtraction + cv2 resize,
* backbone: conv1 … res4 (stride 16),
* rpn: rpn head + proposals (6000 → NMS 0.7 → 300),
* heads: ROI pooling 14×14, res5 on 300 ROIs, class / box / attribute
  heads, box decoding,
* select: generate_tsv's per-class NMS and 10-100 region selection.

Memory: the process's peak resident set size after each stage of the
first image (``ru_maxrss``: cumulative, so the increase shows what a stage
added). ``--roi-chunk-size`` sets how many ROIs res5 processes at once.

Usage:
    python benchmarks/butd_extract.py [--images 3] [--threads 1]
"""
import argparse
import resource
import sys
import time

import numpy as np
import torch


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None):
    from mmext.models.detectors import BUTDFasterRCNN
    from mmext.models.detectors.butd.preprocess import caffe_preprocess
    from mmext.models.detectors.butd.select_regions import select_regions
    from mmext.utils import safe_torch_load
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--images', type=int, default=3)
    p.add_argument('--height', type=int, default=600)
    p.add_argument('--width', type=int, default=800)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--checkpoint', help='converted BUTD checkpoint')
    p.add_argument(
        '--roi-chunk-size',
        type=int,
        default=50,
        help='ROIs per res5 call (0: all 300 at once)')
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = _peak_mb()
    model = BUTDFasterRCNN(
        test_cfg=dict(roi_chunk_size=args.roi_chunk_size or None)).eval()
    if args.checkpoint:
        model.load_state_dict(
            safe_torch_load(args.checkpoint, map_location='cpu')['state_dict'],
            strict=True)
    params = sum(p.numel() for p in model.parameters())
    print(f'BUTDFasterRCNN: {params / 1e6:.1f} M parameters, peak RSS '
          f'{_peak_mb():.0f} MB after build (was {base:.0f} MB); '
          f'{args.images} images {args.height}x{args.width}, '
          f'{args.threads} thread(s)')
    stages = ['preprocess', 'backbone', 'rpn', 'heads', 'select']
    times = {s: [] for s in stages}
    peaks = {}  # of the first image (later images reuse the memory)
    rng = np.random.RandomState(0)
    cfg = model.test_cfg
    num_regions = []
    with torch.no_grad():
        for _ in range(args.images):
            img = rng.randint(
                0, 256, (args.height, args.width, 3), dtype=np.uint8)
            t0 = time.perf_counter()
            x, scale = caffe_preprocess(img, cfg['target_size'],
                                        cfg['max_size'])
            t1 = time.perf_counter()
            peaks.setdefault('preprocess', _peak_mb())
            feats = model.backbone(x)
            t2 = time.perf_counter()
            peaks.setdefault('backbone', _peak_mb())
            props, _ = model.forward_rpn(feats, tuple(x.shape[-2:]), scale)
            t3 = time.perf_counter()
            peaks.setdefault('rpn', _peak_mb())
            out = model.forward_roi(feats, props, scale, img.shape[:2])
            t4 = time.perf_counter()
            peaks.setdefault('heads', _peak_mb())
            keep, _ = select_regions(out['rois'], out['cls_prob'])
            t5 = time.perf_counter()
            peaks.setdefault('select', _peak_mb())
            num_regions.append((len(props), len(keep)))
            for s, a, b in zip(stages, (t0, t1, t2, t3, t4),
                               (t1, t2, t3, t4, t5)):
                times[s].append(b - a)
    total = sum(np.mean(v) for v in times.values())
    print(f'{"stage":<11}{"mean s":>8}{"share":>8}{"peak RSS MB":>13}')
    for s in stages:
        mean = float(np.mean(times[s]))
        print(f'{s:<11}{mean:8.3f}{mean / total:8.1%}{peaks[s]:13.0f}')
    print(f'{"total":<11}{total:8.3f}  -> {1 / total:.3f} images/s; '
          f'(proposals, regions) per image: {num_regions}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
