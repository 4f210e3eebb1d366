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
The model is fused for inference (BatchNorm + Scale folded into the convs,
channels-last) as extraction runs it; ``--no-fuse`` times the plain model.

``--opencv``: generate a random caffemodel of the test network (full size,
or ``--tiny``) and its prototxt from mmext's layer table
(``benchmarks/butd_opencv.py``), convert it with mmext's converter and load
it, then run OpenCV DNN's own caffe importer (``readNetFromCaffe``, its
Conv + BN + Scale + ReLU fusion) on the same caffemodel, the first image's
preprocessed input and mmext's 300 proposals as fixed ROIs, in a child
process (OpenCV 5 dropped the caffe importer: ``--opencv-path DIR`` puts an
OpenCV 4.x first on its path). Prints both times, their ratio over the
same blobs (backbone, RPN convs, ROI pooling, res5, class / box heads) with
the load average, and how far the blobs differ.

Usage:
    python benchmarks/butd_extract.py [--images 3] [--threads 1]
    python benchmarks/butd_extract.py --opencv --opencv-path /tmp/cv4 \
        --width 900 --threads 2 --images 2
"""
import argparse
import os
import os.path as osp
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = osp.dirname(osp.abspath(__file__))


def _tiny_arch():
    """The architecture of mmext.testing's tiny BUTD row."""
    from mmext.testing.tiny_models import TINY_BUTD
    return {
        k: v
        for k, v in TINY_BUTD.items() if k not in ('type', 'test_cfg')
    }


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load():
    return ', '.join(f'{v:.2f}' for v in os.getloadavg())


def parse_args(argv=None):
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
    p.add_argument(
        '--no-fuse', action='store_true', help='time the un-fused model')
    p.add_argument(
        '--opencv',
        action='store_true',
        help='also run OpenCV DNN on the same generated caffemodel')
    p.add_argument(
        '--opencv-path',
        help='folder with an OpenCV 4.x cv2 package (caffe importer)')
    p.add_argument('--tiny', action='store_true', help='tiny network (tests)')
    p.add_argument('--work-dir', help='keep the caffemodel / prototxt here')
    return p.parse_args(argv)


def build_model(args, work_dir):
    """(model, caffemodel path or None): random weights, a converted
    checkpoint, or (``--opencv``) a generated caffemodel converted by
    mmext's converter."""
    from mmext.models.detectors import BUTDFasterRCNN
    from mmext.models.detectors.butd.fuse import fuse_for_inference
    from mmext.utils import safe_torch_load
    arch = _tiny_arch() if args.tiny else {}
    model = BUTDFasterRCNN(
        **arch,
        test_cfg=dict(roi_chunk_size=args.roi_chunk_size or None)).eval()
    caffemodel = None
    if args.opencv:
        import butd_opencv

        from mmext.models.utils.checkpoint_convert.butd_caffe import \
            convert_butd_caffemodel
        caffemodel = osp.join(work_dir, 'butd_random.caffemodel')
        butd_opencv.write_caffemodel(caffemodel,
                                     butd_opencv.random_caffe_layers(arch))
        sd, _ = convert_butd_caffemodel(caffemodel, model_cfg=arch)
        model.load_state_dict(sd, strict=True)
    elif args.checkpoint:
        model.load_state_dict(
            safe_torch_load(args.checkpoint, map_location='cpu')['state_dict'],
            strict=True)
    if not args.no_fuse:
        model = fuse_for_inference(model, inplace=True, channels_last=True)
    return model, arch, caffemodel


def run_opencv(args, work_dir, arch, caffemodel, x, proposals):
    """OpenCV's forward of ``x`` with ``proposals`` as fixed ROIs in a child
    process; returns its npz (times, outputs)."""
    import butd_opencv
    import numpy as np
    rois = torch.cat([proposals.new_zeros(len(proposals), 1), proposals], 1)
    prototxt = osp.join(work_dir, 'butd_test_head.prototxt')
    butd_opencv.write_prototxt(prototxt, arch, tuple(x.shape[-2:]), len(rois))
    inputs = osp.join(work_dir, 'inputs.npz')
    out = osp.join(work_dir, 'opencv_out.npz')
    np.savez(
        inputs,
        data=x.contiguous().numpy().astype(np.float32),
        rois=rois.numpy().astype(np.float32))
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    if args.opencv_path:
        env['PYTHONPATH'] = os.pathsep.join(
            [args.opencv_path, env.get('PYTHONPATH', '')])
    subprocess.run([
        sys.executable,
        osp.join(HERE, 'butd_opencv.py'), prototxt, caffemodel, inputs, out,
        str(args.threads),
        str(args.images)
    ],
                   env=env,
                   check=True)
    return np.load(out)


def _rel(a, b):
    import numpy as np
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def load_verdict(threads):
    """'quiet' when the 1-minute load average is at most this run's own
    ``threads`` + 0.5 (the benchmark itself keeps them busy), else a
    warning to re-measure."""
    busy = os.getloadavg()[0] > threads + 0.5
    return ('measured under load, re-measure on a quiet machine'
            if busy else f'quiet (only this run\'s {threads} thread(s))')


def compare_opencv(cv, ref, mmext_s, threads):
    """Print OpenCV's time, the ratio and the blob differences."""
    cv_s = float(cv['seconds'])
    print(f'OpenCV {cv["version"]} DNN (readNetFromCaffe, same caffemodel, '
          f'fixed ROIs): {cv_s:.3f} s/image (mean of {len(cv["times"])}), '
          f'net load {float(cv["load_seconds"]):.1f} s, peak RSS '
          f'{float(cv["peak_rss_mb"]):.0f} MB')
    print(f'mmext / OpenCV over the same blobs: {mmext_s:.3f} / {cv_s:.3f} '
          f'= {mmext_s / cv_s:.2f} (target <= 0.6); load average {_load()}: '
          f'{load_verdict(threads)}')
    na = ref['rpn_fg'].shape[0]
    print(
        'max relative difference OpenCV vs mmext: rpn fg prob '
        f'{_rel(cv["rpn_cls_prob_reshape"][0, na:], ref["rpn_fg"]):.1e}, '
        f'rpn deltas {_rel(cv["rpn_bbox_pred"][0], ref["rpn_deltas"]):.1e}'
        f', pool5 {_rel(cv["pool5"].reshape(ref["pool5"].shape), ref["pool5"]):.1e}'  # noqa: E501
        f', cls_prob {_rel(cv["cls_prob"], ref["cls_prob"]):.1e}')


def main(argv=None):
    from mmext.models.detectors.butd.preprocess import caffe_preprocess
    from mmext.models.detectors.butd.select_regions import select_regions
    args = parse_args(argv)
    sys.path.insert(0, HERE)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = _peak_mb()
    tmp = None
    work_dir = args.work_dir
    if args.opencv and not work_dir:
        tmp = tempfile.TemporaryDirectory()
        work_dir = tmp.name
    model, arch, caffemodel = build_model(args, work_dir)
    params = sum(p.numel() for p in model.parameters())
    print(f'BUTDFasterRCNN: {params / 1e6:.1f} M parameters, peak RSS '
          f'{_peak_mb():.0f} MB after build (was {base:.0f} MB); '
          f'{args.images} images {args.height}x{args.width}, '
          f'{args.threads} thread(s), '
          f'{"un-fused" if args.no_fuse else "fused, channels-last"}')
    stages = ['preprocess', 'backbone', 'rpn', 'heads', 'select']
    times = {s: [] for s in stages + ['rpn_convs']}
    peaks = {}  # of the first image (later images reuse the memory)
    rng = np.random.RandomState(0)
    cfg = model.test_cfg
    num_regions = []
    first = None
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
            t6 = time.perf_counter()
            logits, deltas = model.rpn_head(feats)  # OpenCV's part of rpn
            times['rpn_convs'].append(time.perf_counter() - t6)
            if first is None:
                first = dict(
                    x=x,
                    props=props,
                    rpn_fg=torch.sigmoid(logits[0]).numpy(),
                    rpn_deltas=deltas[0].numpy(),
                    pool5=out['features'].numpy(),
                    cls_prob=out['cls_prob'].numpy())
    total = sum(np.mean(times[s]) for s in stages)
    print(f'{"stage":<11}{"mean s":>8}{"share":>8}{"peak RSS MB":>13}')
    for s in stages:
        mean = float(np.mean(times[s]))
        print(f'{s:<11}{mean:8.3f}{mean / total:8.1%}{peaks[s]:13.0f}')
    print(f'{"total":<11}{total:8.3f}  -> {1 / total:.3f} images/s; '
          f'(proposals, regions) per image: {num_regions}; load average '
          f'{_load()}')
    if args.opencv:
        matched = float(
            np.mean(times['backbone']) + np.mean(times['rpn_convs']) +
            np.mean(times['heads']))
        cv = run_opencv(args, work_dir, arch, caffemodel, first['x'],
                        first['props'])
        compare_opencv(cv, first, matched, args.threads)
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == '__main__':
    sys.exit(main())
