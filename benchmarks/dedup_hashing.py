# Copyright (c) mmext contributors. All rights reserved.
"""Hashing speed of ``mmext.dedup.hash_images`` vs an imagehash loop.

Writes N JPEGs (crops of the real sample photos, 500x375 like Flowers
images) to a temporary folder, then times on the same files (each line
with the load average at its start; ``cpu`` is CPU ms per image, i.e. per
core, and its ratio to the imagehash loop's):

* imagehash loop: ``Image.open`` + ``imagehash.phash`` per file, plus the
  mirror image (what flip-aware matching needs), in one process;
* ``hash_images(workers=1)`` / ``hash_images(workers=2)``, exact decode
  (asserted identical to imagehash) and ``decode='fast'`` (JPEGs decoded
  downscaled in the DCT domain, luma only; target >= 3x the loop per
  core), with the fast hashes' distance to the exact ones;
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

``--recall`` instead compares the decode modes on planted copies: every
sample photo as a JPEG (q90) and its copies (mirror, JPEG q70, resize
0.5x, centre crops of 3 % and 5 %, all JPEGs): per edit, how many copies
each mode finds at ``DEFAULT_THRESHOLD`` and their largest distance; false
pairs among distinct photos and between copies and other photos; the
distance shift exact -> fast per pair and per file; for each
``--oversample`` (the fast decode's short side / 32 px).

``--thresholds`` instead prints the distance distributions behind
``mmext.dedup.search.DEFAULT_THRESHOLD``: each sample photo vs its edited
copies (JPEG q70, resizes, 3-5 % crops, brightness), and distinct photos
vs each other (originals and mirrors), per hash method.

Usage:
    python benchmarks/dedup_hashing.py [--num 2040]
    python benchmarks/dedup_hashing.py --recall [--oversample 2 4]
    python benchmarks/dedup_hashing.py --thresholds
"""
import argparse
import os
import os.path as osp
import tempfile
import time

import numpy as np
from PIL import Image, ImageEnhance

from mmext.dedup import (DEFAULT_THRESHOLD, METHODS, SkipImage,
                         hamming_distances, hash_images, hash_pil_image)
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


def _load():
    """Load averages (1, 5, 15 min), printed with every timing."""
    return ', '.join(f'{v:.2f}' for v in os.getloadavg())


def _timed(func):
    """``(result, wall seconds, CPU seconds incl. finished children)``."""
    c0, t0 = _cpu(), time.perf_counter()
    out = func()
    return out, time.perf_counter() - t0, _cpu() - c0


def _self_distances(a, b):
    """Hamming distance of each row of ``a`` to the same row of ``b``."""
    return np.bitwise_count(a ^ b).sum(-1)


def measure_speed(num):
    """Imagehash loop vs ``hash_images`` exact / fast / cached on ``num``
    500x375 JPEGs."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = osp.join(tmp, 'images')
        os.makedirs(folder)
        paths = make_files(folder, num)
        n = len(paths)
        print(f'{n} JPEGs 500x375, phash + flipped phash on '
              f'{os.cpu_count()} cores; cpu = CPU ms per image (per core)')
        load = _load()
        ref, t_loop, cpu_loop = _timed(lambda: imagehash_loop(paths))
        print(f'  imagehash loop          {n / t_loop:8.0f} img/s  '
              f'cpu {1e3 * cpu_loop / n:.2f} ms/img  (load {load})')
        results = {}
        for decode in ('exact', 'fast'):
            for workers in (1, 2):
                load = _load()
                res, t, cpu = _timed(lambda: hash_images(
                    paths, workers=workers, progress=False, decode=decode))
                results[decode] = res
                print(f'  {decode:5s} workers={workers}       {n / t:8.0f} '
                      f'img/s  ({t_loop / t:.2f}x wall)  cpu '
                      f'{1e3 * cpu / n:.2f} ms/img  ({cpu_loop / cpu:.2f}x '
                      f'per core)  (load {load})')
                if decode == 'exact':
                    got = [(res.hex(i), res.hex(i, True))
                           for i in range(len(res))]
                    assert got == ref, 'hash_images differs from imagehash'
        exact, fast = results['exact'], results['fast']
        assert exact.paths == fast.paths
        shift = _self_distances(exact.hashes, fast.hashes)
        print(f'  fast vs exact hash of the same file: mean '
              f'{shift.mean():.2f} max {shift.max()} bits; the exact hashes '
              'are identical to imagehash\'s')
        cache = osp.join(tmp, 'cache.sqlite')
        hash_images(paths, workers=2, cache_file=cache, progress=False)
        load = _load()
        res, t_cached, _ = _timed(lambda: hash_images(
            paths, workers=2, cache_file=cache, progress=False))
        assert res.num_cached == n
        print(f'  exact cached            {n / t_cached:8.0f} img/s  '
              f'({t_loop / t_cached:.1f}x)  (load {load})')
        load = _load()
        peer, t_peer, cpu_peer = _timed(lambda: imagededup_phash(folder))
        assert peer is None or len(peer) == n
        if peer is None:
            print('  imagededup              not installed (optional peer, '
                  'see the docstring)')
        else:
            print(f'  imagededup workers=2    {n / t_peer:8.0f} img/s  '
                  f'({t_loop / t_peer:.2f}x)  cpu {1e3 * cpu_peer / n:.2f} '
                  f'ms/img  (phash only: no mirror images)  (load {load})')


#: Planted copies of ``--recall``: edit name -> (edit, JPEG quality).
RECALL_EDITS = {
    'flip': (lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 90),
    'jpeg70': (lambda im: im, 70),
    'resize0.5': (lambda im: im.resize(
        (im.width // 2, im.height // 2), Image.Resampling.BICUBIC), 90),
    'crop3%': (lambda im: _center_crop(im, 0.03), 90),
    'crop5%': (lambda im: _center_crop(im, 0.05), 90),
}


def _center_crop(img, frac):
    w, h = img.size
    dx, dy = round(w * frac / 2), round(h * frac / 2)
    return img.crop((dx, dy, w - dx, h - dy))


def write_planted(folder):
    """Each sample photo as a JPEG (q90) and its planted copies
    (:data:`RECALL_EDITS`), also JPEGs. Returns ``(originals, copies)``:
    paths, and ``(path, edit, original path)`` triples."""
    originals, copies = [], []
    for name, img in sample_photos().items():
        path = osp.join(folder, f'{name}.jpg')
        img.save(path, quality=90)
        originals.append(path)
        for edit, (func, quality) in RECALL_EDITS.items():
            copy = osp.join(folder, f'{name}.{edit}.jpg')
            func(img).save(copy, quality=quality)
            copies.append((copy, edit, path))
    return originals, copies


def _match_distances(query, reference):
    """Distances as the search takes them: the smaller of hash vs hash and
    the query's mirror vs hash."""
    return np.minimum(
        hamming_distances(query.hashes, reference.hashes),
        hamming_distances(query.flipped, reference.hashes))


def recall_of(originals, copies, threshold, **kwargs):
    """Planted-copy distances and false pairs of one decode setting."""
    orig = hash_images(originals, workers=1, progress=False, **kwargs)
    cop = hash_images([c for c, _, _ in copies],
                      workers=1,
                      progress=False,
                      **kwargs)
    dist = _match_distances(cop, orig)
    row = {p: i for i, p in enumerate(cop.paths)}
    col = {p: i for i, p in enumerate(orig.paths)}
    planted = {}  # edit -> [distance of each planted pair]
    for copy, edit, src in copies:
        if copy in row and src in col:
            planted.setdefault(edit, []).append(int(dist[row[copy], col[src]]))
    source = {copy: src for copy, _, src in copies}
    cross = dist.copy()  # copies vs every other photo
    mask = np.zeros(dist.shape, bool)
    for i, copy in enumerate(cop.paths):
        if source[copy] in col:
            mask[i, col[source[copy]]] = True
    within = np.minimum(
        _match_distances(orig, orig),
        _match_distances(orig, orig).T)
    iu = np.triu_indices(len(orig), 1)
    return dict(
        result=(orig, cop),
        planted=planted,
        distinct_min=int(within[iu].min()),
        false_distinct=int((within[iu] <= threshold).sum()),
        num_distinct=len(iu[0]),
        false_cross=int((cross[~mask] <= threshold).sum()),
        num_cross=int((~mask).sum()))


def measure_recall(oversamples):
    """Exact vs fast decode on planted copies of the real sample photos at
    the documented threshold, for each fast-decode oversampling."""
    import mmext.dedup.decode as decode_mod
    threshold = DEFAULT_THRESHOLD
    with tempfile.TemporaryDirectory() as tmp:
        originals, copies = write_planted(tmp)
        print(f'{len(originals)} sample photos as JPEG q90, '
              f'{len(copies)} planted copies (JPEGs), phash 64 bits, '
              f'threshold {threshold} (load {_load()})')
        runs = {'exact': recall_of(originals, copies, threshold)}
        for over in oversamples:
            decode_mod.FAST_OVERSAMPLE = over
            side = decode_mod.fast_min_side(8)
            runs[f'fast x{over:g} (>= {side} px)'] = recall_of(
                originals, copies, threshold, decode='fast')
    exact = runs['exact']
    head = f'  {"mode":22s}' + ''.join(f'{e:>11s}' for e in RECALL_EDITS)
    print('recall (found / planted) and max distance per edit:')
    print(head + '   false pairs: distinct / copy-vs-other (min distinct)')
    for mode, run in runs.items():
        cells = ''
        for edit in RECALL_EDITS:
            ds = np.array(run['planted'].get(edit, [-1]))
            found = (ds[ds >= 0] <= threshold).sum()
            cells += f'{found:4d}/{(ds >= 0).sum():<3d}{ds.max():3d}'
        print(f'  {mode:22s}{cells}   {run["false_distinct"]}/'
              f'{run["num_distinct"]} {run["false_cross"]}/'
              f'{run["num_cross"]} (min {run["distinct_min"]})')
    print('distance shift exact -> fast on planted pairs (fast - exact) and '
          'hash change of the same file:')
    for mode, run in runs.items():
        if mode == 'exact':
            continue
        shift = np.concatenate([
            np.array(run['planted'][e]) - np.array(exact['planted'][e])
            for e in RECALL_EDITS
        ])
        same = np.concatenate([
            _self_distances(a.hashes, b.hashes)
            for a, b in zip(exact['result'], run['result'])
        ])
        print(f'  {mode:22s} pair shift mean {shift.mean():+.2f} mean |.| '
              f'{np.abs(shift).mean():.2f} max |.| {np.abs(shift).max()}; '
              f'same file mean {same.mean():.2f} max {same.max()} bits')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num', type=int, default=2040)
    parser.add_argument('--thresholds', action='store_true')
    parser.add_argument(
        '--recall',
        action='store_true',
        help='exact vs fast decode: distance shift, recall of planted '
        'copies, false pairs')
    parser.add_argument(
        '--oversample',
        type=float,
        nargs='+',
        default=[2, 4],
        help='--recall: fast-decode short side / phash thumbnail side to '
        'compare (mmext.dedup.decode.FAST_OVERSAMPLE)')
    args = parser.parse_args()
    if args.thresholds:
        measure_thresholds()
    elif args.recall:
        measure_recall(args.oversample)
    else:
        measure_speed(args.num)


if __name__ == '__main__':
    main()
