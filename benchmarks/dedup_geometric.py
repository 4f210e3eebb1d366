# Copyright (c) mmext contributors. All rights reserved.
"""Recall and false pairs of the geometric leakage stage, per transform.

Held-out images: the real photos of ``mmext.testing.sample_photos()``
(scikit-image, scikit-learn) with enough texture for ORB, plus generated
Flowers look-alikes. Training images: planted copies of every held-out
image (crops of 50-90 % area at a random place, rotations by 90° / 180° /
±5-15°, borders / letterboxing, scale + crop, colour shifts; all saved as
JPEG q90), and distinct images: the other half of each photo (same
content, no shared pixels), other generated flowers of the same class
(similar content), the other photos. Every training image is checked
against every held-out image through the full pipeline (files ->
features -> candidates -> verification), and, separately, the candidate
stage alone and brute-force verification of every pair (the margin of the
acceptance rule).

``stereo_motorcycle`` (left / right views of one scene) is reported on
its own line: two shots of the same scene count as a leak by the stage's
rule (the same surface under a similarity), like the separate shots of
one plant in Flowers-17/102.

Usage::

    python benchmarks/dedup_geometric.py            # photos, ~1 min
    python benchmarks/dedup_geometric.py --scale 0.25   # + timing on a
    # Flowers-102 x Flowers-17 sized generated set (1.0 = 8189 x 1360)
"""
import argparse
import os
import os.path as osp
import tempfile
import time
from collections import defaultdict

import numpy as np
from PIL import Image, ImageEnhance

from mmext.dedup.geometric import (DEFAULT_RULE, candidate_pairs,
                                   find_geometric_pairs, verify_pair)
from mmext.dedup.geometric_features import extract_features
from mmext.testing import sample_photos
from mmext.testing.flowers import flower_image

# photos with content (not flat charts): held-out images. Left out:
# 'clock' (a motion-blurred blob on a grey wall: no corner repeats between
# copies, so no local feature matches it; the hash stage is the tool) and
# 'colorwheel' (a smooth chart: no ORB keypoint at all).
HELDOUT = ('astronaut', 'chelsea', 'coffee', 'rocket', 'camera', 'horse',
           'coins', 'china', 'flower', 'moon', 'retina',
           'immunohistochemistry', 'hubble_deep_field', 'page', 'text',
           'grass', 'gravel', 'brick', 'logo')


def crop_area(img, frac, rng):
    """A crop of ``frac`` of the area, aspect kept, at a random place."""
    w, h = img.size
    s = frac**0.5
    cw, ch = round(w * s), round(h * s)
    x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
    return img.crop((int(x), int(y), int(x) + cw, int(y) + ch))


def letterbox(img, aspect=16 / 9, colour=(0, 0, 0)):
    w, h = img.size
    cw = max(w, round(h * aspect))
    canvas = Image.new('RGB', (cw, round(max(h, cw / aspect))), colour)
    canvas.paste(img, ((cw - w) // 2, (canvas.height - h) // 2))
    return canvas


def border(img, frac=0.15, colour=(255, 255, 255)):
    w, h = img.size
    dx, dy = round(w * frac), round(h * frac)
    canvas = Image.new('RGB', (w + 2 * dx, h + 2 * dy), colour)
    canvas.paste(img, (dx, dy))
    return canvas


def colour_shift(img):
    img = ImageEnhance.Color(img).enhance(0.4)
    img = ImageEnhance.Brightness(img).enhance(1.25)
    arr = np.asarray(img).astype(np.float32)
    arr = arr * np.array([1.1, 0.95, 0.8])  # warm white balance
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def transforms(rng):
    """name -> edit of a PIL image (the planted copies)."""
    edits = {
        f'crop {a}%': (lambda a: lambda im: crop_area(im, a / 100, rng))(a)
        for a in (50, 60, 70, 80, 90)
    }
    for deg in (90, 180, 270):
        edits[f'rotate {deg}'] = (
            lambda d: lambda im: im.rotate(d, expand=True))(
                deg)
    for deg in (-15, -10, -5, 5, 10, 15):
        edits[f'rotate {deg:+d}'] = (
            lambda d: lambda im: im.rotate(d, Image.BICUBIC, expand=True))(
                deg)
    edits['letterbox 16:9'] = letterbox
    edits['border 15%'] = border
    edits['scale 0.5 + crop 70%'] = lambda im: crop_area(
        im.resize((im.width // 2, im.height // 2), Image.LANCZOS), 0.7, rng)
    edits['colour shift'] = colour_shift
    edits['colour + crop 70% + rotate 10'] = lambda im: colour_shift(
        crop_area(im, 0.7, rng)).rotate(
            10, Image.BICUBIC, expand=True)
    return edits


def make_sets(root, photos, num_flowers=6, flower_side=256, seed=0):
    """Write held-out and training images; returns the held-out paths, the
    training paths and ``{train path: (held-out path, transform)}``."""
    rng = np.random.default_rng(seed)
    held_dir, train_dir = osp.join(root, 'heldout'), osp.join(root, 'train')
    os.makedirs(held_dir)
    os.makedirs(train_dir)
    held, train, truth = [], [], {}
    sources = {}
    for name in HELDOUT:
        img = photos[name]
        w = img.width // 2  # the left half is held out, the right distinct
        sources[name] = img.crop((0, 0, w, img.height))
        distinct = img.crop((w, 0, img.width, img.height))
        path = osp.join(train_dir, f'{name}_other_half.jpg')
        distinct.save(path, quality=90)
        train.append(path)
    for k in range(num_flowers):  # class 3: same class, other index
        sources[f'flower17_{k}'] = flower_image(3, k, flower_side, seed=0)
        path = osp.join(train_dir, f'flower17_sameclass_{k}.jpg')
        flower_image(3, 100 + k, flower_side, seed=0).save(path, quality=90)
        train.append(path)
    for name, img in sources.items():
        path = osp.join(held_dir, f'{name}.jpg')
        img.save(path, quality=90)
        held.append(path)
        for t, (tname, edit) in enumerate(transforms(rng).items()):
            out = osp.join(train_dir, f'{name}__{t:02d}.jpg')
            edit(img).convert('RGB').save(out, quality=90)
            train.append(out)
            truth[out] = (path, tname)
    return held, train, truth


def stereo_line(photos_dir):
    from skimage import data as skdata
    left, right, _ = skdata.stereo_motorcycle()
    paths = []
    for name, arr in (('left', left), ('right', right)):
        paths.append(osp.join(photos_dir, f'motorcycle_{name}.jpg'))
        Image.fromarray(arr).save(paths[-1], quality=90)
    a, b = (
        extract_features([p], workers=0, progress=False).features[0]
        for p in paths)
    ev = verify_pair(a, b, **DEFAULT_RULE, accept_only=False)
    return (f'stereo_motorcycle left vs right (two shots of one scene): '
            f'{ev["inliers"]} inliers, coverage {ev.get("coverage", 0)}, '
            f'overlap {ev.get("overlap", 0)} -> '
            f'{"flagged" if ev["accepted"] else "not flagged"}')


def photo_benchmark(workers):
    photos = sample_photos()
    with tempfile.TemporaryDirectory() as root:
        held, train, truth = make_sets(root, photos)
        t0 = time.time()
        hf = extract_features(held, workers=workers, progress=False)
        tf = extract_features(train, workers=workers, progress=False)
        t_feat = time.time() - t0
        t0 = time.time()
        pairs = find_geometric_pairs(tf, hf, workers=workers, progress=False)
        t_match = time.time() - t0
        cands = {(tf.paths[q], hf.paths[r])
                 for q, r, _ in candidate_pairs(tf, hf)}
        found = {(p.query_path, p.ref_path) for p in pairs}
        # brute force: every pair verified (no candidate stage)
        inl_true, inl_false = defaultdict(list), []
        for qi, qp in enumerate(tf.paths):
            for ri, rp in enumerate(hf.paths):
                ev = verify_pair(
                    tf.features[qi],
                    hf.features[ri],
                    **DEFAULT_RULE,
                    accept_only=False)
                if truth.get(qp, (None, ))[0] == rp:
                    inl_true[truth[qp][1]].append(ev['inliers'])
                else:
                    inl_false.append(ev['inliers'])
        stereo = stereo_line(root)
    by_t = defaultdict(lambda: [0, 0, 0])
    for qp, (rp, tname) in truth.items():
        by_t[tname][0] += 1
        by_t[tname][1] += (qp, rp) in cands
        by_t[tname][2] += (qp, rp) in found
    false = found - {(q, r) for q, (r, _) in truth.items()}
    print(f'{len(hf)} held-out images ({len(HELDOUT)} photo halves, '
          f'{len(hf) - len(HELDOUT)} generated flowers), {len(tf)} training '
          f'images ({len(truth)} planted copies, {len(tf) - len(truth)} '
          'distinct); skipped: '
          f'{[osp.basename(p) for p, _ in hf.skipped + tf.skipped]}')
    print(f'{"transform":32s} {"n":>3s} {"candidates":>10s} '
          f'{"recall":>7s} {"min inliers":>11s}')
    for tname, (n, c, f) in by_t.items():
        print(f'{tname:32s} {n:3d} {c / n:10.1%} {f / n:7.1%} '
              f'{min(inl_true[tname]):11d}')
    total = sum(v[0] for v in by_t.values())
    print(f'{"all":32s} {total:3d} '
          f'{sum(v[1] for v in by_t.values()) / total:10.1%} '
          f'{sum(v[2] for v in by_t.values()) / total:7.1%}')
    print(f'false pairs: {len(false)} of {len(tf) * len(hf) - len(truth)} '
          f'distinct pairs; most inliers of a distinct pair (brute force): '
          f'{max(inl_false)} (rule: >= {DEFAULT_RULE["min_inliers"]})')
    for q, r in sorted(false):
        print(f'  false: {osp.basename(q)} ~ {osp.basename(r)}')
    print(stereo)
    print(f'time: features {t_feat:.1f} s, candidates + verification '
          f'{t_match:.1f} s ({workers} workers), load average '
          f'{os.getloadavg()[0]:.1f}')


def _write_flower(task):
    path, i, side, seed = task
    flower_image(i % 17, i, side, seed=seed).save(path, quality=90)


def scale_benchmark(scale, workers, side=256):
    """Timing on generated flowers in Flowers-102 x Flowers-17 numbers."""
    import multiprocessing as mp
    n_train, n_held = round(8189 * scale), round(1360 * scale)
    with tempfile.TemporaryDirectory() as root:
        t0 = time.time()
        paths, tasks = {'train': [], 'held': []}, []
        for name, n, seed in (('train', n_train, 1), ('held', n_held, 0)):
            os.makedirs(osp.join(root, name))
            for i in range(n):
                paths[name].append(osp.join(root, name, f'{i:05d}.jpg'))
                tasks.append((paths[name][-1], i, side, seed))
        with mp.get_context('fork').Pool(max(1, workers)) as pool:
            pool.map(_write_flower, tasks, chunksize=64)
        print(
            f'generated {n_train} + {n_held} images of {side} px in '
            f'{time.time() - t0:.0f} s',
            flush=True)
        cache = osp.join(root, 'cache.sqlite')
        for run in ('cold', 'cached'):
            t0 = time.time()
            tf = extract_features(
                paths['train'],
                workers=workers,
                cache_file=cache,
                progress=False)
            hf = extract_features(
                paths['held'],
                workers=workers,
                cache_file=cache,
                progress=False)
            t_feat = time.time() - t0
            t0 = time.time()
            pairs = find_geometric_pairs(
                tf, hf, workers=workers, progress=False)
            t_match = time.time() - t0
            print(
                f'{run}: features {t_feat:.0f} s, candidates + '
                f'verification {t_match:.0f} s, {len(pairs)} pairs '
                f'({workers} workers, load average '
                f'{os.getloadavg()[0]:.1f})',
                flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--scale', type=float, default=0)
    parser.add_argument('--no-photos', action='store_true')
    args = parser.parse_args()
    if not args.no_photos:
        photo_benchmark(args.workers)
    if args.scale:
        scale_benchmark(args.scale, args.workers)


if __name__ == '__main__':
    main()
