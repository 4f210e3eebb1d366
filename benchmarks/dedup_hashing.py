# Copyright (c) mmext contributors. All rights reserved.
"""Hashing speed of ``mmext.dedup.hash_images`` vs an imagehash loop.

Writes N JPEGs (crops of the real sample photos, 500x375 like Flowers
images) to a temporary folder, then times on the same files:

* imagehash loop: ``Image.open`` + ``imagehash.phash`` per file, plus the
  mirror image (what flip-aware matching needs), in one process;
* ``hash_images(workers=1)`` / ``hash_images(workers=2)``;
* ``hash_images`` again with a warm cache;
* imagededup's ``PHash().encode_images(num_enc_workers=2)``, when
  imagededup is importable (an optional, benchmark-only peer: it pulls
  torch, torchvision, matplotlib, scikit-learn, PyWavelets; install it with
  ``pip install -r requirements/benchmarks.txt``, or ``pip install --no-deps
  --target DIR imagededup`` and ``PYTHONPATH=DIR`` where those are
  present). Its phash differs from imagehash's by ~1 bit and it hashes no
  mirror images, so it is timed, not compared.

Asserts our hashes are identical to imagehash's and prints images/s, the
ratios and the CPU time per image.

``--thresholds`` instead prints the distance distributions behind
``mmext.dedup.search.DEFAULT_THRESHOLD``: each sample photo vs its edited
copies (JPEG q70, resizes, 3-5 % crops, brightness), and distinct photos
vs each other (originals and mirrors), per hash method.

Usage:
    python benchmarks/dedup_hashing.py [--num 2040] [--thresholds]
"""
import argparse
import os
import os.path as osp
import tempfile
import time

import numpy as np
from PIL import Image, ImageEnhance

from mmext.dedup import (METHODS, SkipImage, hamming_distances, hash_images,
                         hash_pil_image)
from mmext.testing import sample_photos


def _edits(img):
    w, h = img.size
    out = {}
    for q in (70, 40):
        out[f'jpeg{q}'] = _jpeg(img, q)
    for s in (0.5, 0.75, 1.5):
        out[f'resize{s}'] = img.resize((int(w * s), int(h * s)),
                                       Image.Resampling.BICUBIC)
    for frac in (0.03, 0.05):
        dx, dy = int(w * frac / 2), int(h * frac / 2)
        out[f'crop{int(frac * 100)}%center'] = img.crop(
            (dx, dy, w - dx, h - dy))
        out[f'crop{int(frac * 100)}%corner'] = img.crop(
            (0, 0, w - 2 * dx, h - 2 * dy))
    out['bright+10%'] = ImageEnhance.Brightness(img).enhance(1.1)
    out['flip'] = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return out


def _jpeg(img, quality):
    import io
    buf = io.BytesIO()
    img.save(buf, 'JPEG', quality=quality)
    buf.seek(0)
    return Image.open(buf).convert('RGB')


def measure_thresholds():
    photos = sample_photos()
    for method in METHODS:
        per_edit = {}
        hashes, flips = [], []
        for name, img in photos.items():
            try:
                h, f = hash_pil_image(img, method)
            except SkipImage:
                continue
            hashes.append(h)
            flips.append(f)
            for edit, im2 in _edits(img).items():
                h2, f2 = hash_pil_image(im2, method)
                d = int(hamming_distances(h[None], h2[None])[0, 0])
                if edit == 'flip':  # matched through the flipped variant
                    d = int(hamming_distances(f[None], h2[None])[0, 0])
                per_edit.setdefault(edit, []).append(d)
        hashes, flips = np.stack(hashes), np.stack(flips)
        dist = hamming_distances(hashes, hashes)
        dflip = hamming_distances(flips, hashes)
        iu = np.triu_indices(len(hashes), 1)
        distinct = np.minimum(dist[iu], np.minimum(dflip[iu], dflip.T[iu]))
        print(f'{method} (64 bits, {len(hashes)} photos):')
        for edit, ds in per_edit.items():
            print(f'  {edit:16s} max {max(ds):2d}  median '
                  f'{int(np.median(ds)):2d}')
        print(f'  distinct pairs   min {distinct.min():2d}  median '
              f'{int(np.median(distinct)):2d}  (n={len(distinct)})')


def make_files(folder, num):
    photos = [p for p in sample_photos().values() if min(p.size) >= 375]
    rng = np.random.default_rng(0)
    paths = []
    for i in range(num):
        img = photos[i % len(photos)]
        x = rng.integers(0, img.width - 375 + 1)
        y = rng.integers(0, img.height - 375 + 1)
        crop = img.crop((x, y, x + 375, y + 375)).resize((500, 375))
        path = osp.join(folder, f'image_{i:05d}.jpg')
        crop.save(path, quality=90)
        paths.append(path)
    return paths


def _cpu():
    """CPU seconds of this process and its finished children."""
    import resource
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def imagehash_loop(paths):
    import imagehash
    out = []
    for p in paths:
        img = Image.open(p)
        out.append((str(imagehash.phash(img)),
                    str(
                        imagehash.phash(
                            img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))))
    return out


def imagededup_phash(folder, workers=2):
    """imagededup's own parallel phash of a folder, or None when it is not
    installed."""
    try:
        from imagededup.methods import PHash
    except ImportError:
        return None
    return PHash(verbose=False).encode_images(
        image_dir=folder, num_enc_workers=workers)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num', type=int, default=2040)
    parser.add_argument('--thresholds', action='store_true')
    args = parser.parse_args()
    if args.thresholds:
        measure_thresholds()
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = osp.join(tmp, 'images')
        os.makedirs(folder)
        paths = make_files(folder, args.num)
        n = len(paths)
        load = os.getloadavg()[0]
        c0 = _cpu()
        t0 = time.perf_counter()
        ref = imagehash_loop(paths)
        t_loop = time.perf_counter() - t0
        cpu_loop = _cpu() - c0
        times, cpus = {}, {}
        for workers in (1, 2):
            c0 = _cpu()
            t0 = time.perf_counter()
            res = hash_images(paths, workers=workers, progress=False)
            times[workers] = time.perf_counter() - t0
            cpus[workers] = _cpu() - c0
            got = [(res.hex(i), res.hex(i, True)) for i in range(len(res))]
            assert got == ref, 'hash_images differs from imagehash'
        cache = osp.join(tmp, 'cache.sqlite')
        hash_images(paths, workers=2, cache_file=cache, progress=False)
        t0 = time.perf_counter()
        res = hash_images(paths, workers=2, cache_file=cache, progress=False)
        t_cached = time.perf_counter() - t0
        assert res.num_cached == n
        c0 = _cpu()
        t0 = time.perf_counter()
        peer = imagededup_phash(folder)
        t_peer = time.perf_counter() - t0
        cpu_peer = _cpu() - c0
        assert peer is None or len(peer) == n
        print(f'{n} JPEGs 500x375, phash + flipped phash, identical hashes '
              f'(load average {load:.1f} on {os.cpu_count()} cores)')
        print(f'  imagehash loop        {n / t_loop:8.0f} img/s  '
              f'cpu {1e3 * cpu_loop / n:.2f} ms/img')
        for w, t in times.items():
            print(f'  hash_images workers={w} {n / t:8.0f} img/s  '
                  f'({t_loop / t:.2f}x)  cpu {1e3 * cpus[w] / n:.2f} ms/img')
        print(f'  hash_images cached    {n / t_cached:8.0f} img/s  '
              f'({t_loop / t_cached:.1f}x)')
        if peer is None:
            print('  imagededup            not installed (optional peer, '
                  'see the docstring)')
        else:
            print(f'  imagededup workers=2  {n / t_peer:8.0f} img/s  '
                  f'({t_loop / t_peer:.2f}x)  cpu {1e3 * cpu_peer / n:.2f} '
                  f'ms/img  (phash only: no mirror images)')


if __name__ == '__main__':
    main()
