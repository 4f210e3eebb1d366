# Copyright (c) mmext contributors. All rights reserved.
"""Geometric stage of the leakage check: crops, rotations, borders and
partial overlaps that perceptual hashes miss.

Perceptual hashes (:mod:`mmext.dedup.hashing`) find re-encodes, resizes
and mirror copies; a held-out photo that reappears in training cropped to
half its area, turned by 90° or 10°, or letterboxed is ~30 bits away,
like any other photo. imagededup's answer (a CNN embedding) needs hub
weights and finds "similar" images, not "the same" ones. This stage finds
the *same surface* in two images in two steps:

1. **Candidates** (recall-oriented, cheap): ORB descriptors of all
   held-out images (:mod:`mmext.dedup.geometric_features`) go into one
   bit-sampling LSH index (:mod:`mmext.dedup.geometric_index`); every
   training image's descriptors vote for the held-out images owning their
   near neighbours (Hamming distance <= ``max_vote_distance``); the
   ``top_k`` held-out images with at least ``min_votes`` votes are its
   candidates. Training images stream through
   the index in chunks, so memory is the held-out features plus one chunk.
2. **Verification** (precision): each candidate pair is matched by brute
   force (Hamming, Lowe's ratio test, one match per keypoint on both sides)
   and a similarity transform (rotation, uniform scale, translation;
   ``cv2.estimateAffinePartial2D`` with RANSAC) is fitted. A pair is a
   leak when at least ``min_inliers`` matches agree with it, the inliers
   spread over at least ``min_coverage`` of both images (convex hull area,
   so a logo or a repeated texture in one corner does not count) and the
   scale is within ``1/max_scale .. max_scale``.

The acceptance rule means: *the same physical surface appears in both
images under a similarity transform*. Two shots of one scene from nearly
the same viewpoint (a stereo pair, the separate shots of one plant in
Flowers-17/102) are flagged too; two photos of different objects of one
kind are not. Thresholds are measured in ``benchmarks/dedup_geometric.py``
(see :data:`DEFAULT_RULE`).

Every accepted :class:`GeometricPair` carries its evidence: the 2 x 3
transform (training image -> held-out image, in the pixels of the images
resized to :data:`~mmext.dedup.geometric_features.WORK_SIDE`), the inlier
count, the overlap fraction (the held-out image's area that the training
image covers under the transform) and the inlier points, from which the
report draws the matched region.
"""
import multiprocessing as mp

import cv2
import numpy as np

from .geometric_index import DescriptorIndex
from .geometric_verify import DEFAULT_RULE, GeometricPair, verify_pair

__all__ = [
    'DEFAULT_RULE', 'GeometricPair', 'verify_pair', 'candidate_pairs',
    'find_geometric_pairs', 'find_leaks_geometric'
]


def _index(features):
    """:class:`DescriptorIndex` of every descriptor of ``features``."""
    desc = np.concatenate([f.desc for f in features])
    owner = np.repeat(
        np.arange(len(features)), [len(f.desc) for f in features])
    return DescriptorIndex(desc, owner)


def _vote(index, features, max_distance):
    """``(train image, held-out image, votes)`` arrays for ``features``
    (one chunk of training images)."""
    desc = np.concatenate([f.desc for f in features])
    query = np.repeat(
        np.arange(len(features)), [len(f.desc) for f in features])
    return index.vote(desc, query, max_distance)


def _top_candidates(q, r, votes, top_k, min_votes):
    keep = votes >= min_votes
    q, r, votes = q[keep], r[keep], votes[keep]
    order = np.lexsort((r, -votes, q))
    q, r, votes = q[order], r[order], votes[order]
    rank = np.arange(len(q)) - np.searchsorted(q, q)
    keep = rank < top_k
    return q[keep], r[keep], votes[keep]


# state shared with forked workers (a FLANN index does not pickle)
_STATE = {}


def _process_chunk(bounds):
    start, stop = bounds
    s = _STATE
    train, held = s['train'], s['held']
    q, r, votes = _vote(s['index'], train[start:stop], s['max_distance'])
    q, r, votes = _top_candidates(q, r, votes, s['top_k'], s['min_votes'])
    out = []
    for qi, ri, v in zip((q + start).tolist(), r.tolist(), votes.tolist()):
        evidence = (
            verify_pair(train[qi], held[ri], **s['rule'])
            if s['verify'] else None)
        out.append((qi, ri, v, evidence))
    return out


def candidate_pairs(train,
                    held,
                    top_k=10,
                    min_votes=4,
                    max_vote_distance=50,
                    chunk_size=64):
    """Candidate ``(train index, held-out index, votes)`` triples of two
    :class:`~mmext.dedup.geometric_features.FeatureSet` (the recall stage
    alone, to measure it; arguments as :func:`find_geometric_pairs`)."""
    results = _run(
        train.features,
        held.features,
        dict(
            rule={},
            verify=False,
            top_k=top_k,
            min_votes=min_votes,
            max_distance=max_vote_distance),
        chunk_size,
        workers=0,
        progress=False)
    return [(qi, ri, v) for qi, ri, v, _ in results]


def _run(train, held, settings, chunk_size, workers, progress):
    from tqdm import tqdm
    if not train or not held:
        return []
    _STATE.update(settings, index=_index(held), train=train, held=held)
    chunks = [(i, min(i + chunk_size, len(train)))
              for i in range(0, len(train), chunk_size)]
    bar = tqdm(
        total=len(train),
        desc='geometric',
        unit='img',
        disable=not progress,
        dynamic_ncols=True)
    results = []
    threads = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)  # forked workers must not share a pool
        if workers <= 1 or len(chunks) < 2 or mp.current_process().daemon:
            outputs = map(_process_chunk, chunks)
            pool = None
        else:
            methods = mp.get_all_start_methods()
            pool = mp.get_context('fork' if 'fork' in methods else None)\
                .Pool(workers)
            outputs = pool.imap(_process_chunk, chunks)
        for (start, stop), out in zip(chunks, outputs):
            results.extend(out)
            bar.update(stop - start)
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        cv2.setNumThreads(threads)
        _STATE.clear()
        bar.close()
    return results


def find_geometric_pairs(train,
                         held,
                         rule=None,
                         top_k=10,
                         min_votes=4,
                         max_vote_distance=50,
                         workers=2,
                         progress=True,
                         chunk_size=64,
                         exclude=()):
    """Training images that show held-out content under a similarity.

    Args:
        train (FeatureSet): Training image features.
        held (FeatureSet): Held-out image features (indexed in memory).
        rule (dict, optional): Overrides of :data:`DEFAULT_RULE`.
        top_k (int): Candidates verified per training image. Defaults to
            10.
        min_votes (int): Fewest descriptor votes of a candidate. Defaults
            to 4.
        max_vote_distance (int): Largest Hamming distance of a vote (of
            256 bits). Defaults to 50.
        workers (int): Processes. Defaults to 2.
        progress (bool): Progress bar. Defaults to True.
        chunk_size (int): Training images per index query. Defaults to 64.
        exclude (Iterable[tuple[str, str]]): ``(train, held-out)`` path
            pairs already found (e.g. by the hash stage), left out.

    Returns:
        list[GeometricPair]: Accepted pairs, by training image then
        inliers (most first).
    """
    full_rule = dict(DEFAULT_RULE, **(rule or {}))
    results = _run(
        train.features, held.features,
        dict(
            rule=full_rule,
            verify=True,
            top_k=top_k,
            min_votes=min_votes,
            max_distance=max_vote_distance), chunk_size, workers, progress)
    exclude = set(exclude)
    pairs = []
    for qi, ri, _, ev in results:
        if ev is None:
            continue
        qp, rp = train.paths[qi], held.paths[ri]
        if (qp, rp) in exclude:
            continue
        pairs.append(
            GeometricPair(
                qp,
                rp,
                ev['inliers'],
                ev['matches'],
                ev['overlap'],
                ev['coverage'],
                ev['support'],
                ev['transform'],
                ev['angle'],
                ev['scale'],
                tuple(train.features[qi].size),
                tuple(held.features[ri].size),
                tuple(train.features[qi].box),
                tuple(held.features[ri].box),
                ev['query_points'],
                ev['ref_points'],
                query_index=qi,
                ref_index=ri))
    pairs.sort(key=lambda p: (p.query_index, -p.inliers, p.ref_index))
    return pairs


def find_leaks_geometric(train_paths, held_paths, hash_pairs, hash_cfg,
                         geometric_cfg):
    """The geometric stage for :class:`~mmext.datasets.ExcludeImages`:
    pairs of two path lists that ``hash_pairs`` does not hold, features
    cached in ``hash_cfg['cache_file']`` with its ``workers`` and
    ``progress``."""
    from .geometric_features import extract_features
    kwargs = {
        k: hash_cfg[k]
        for k in ('workers', 'cache_file', 'progress') if k in hash_cfg
    }
    train = extract_features(train_paths, **kwargs)
    held = extract_features(held_paths, **kwargs)
    cfg = dict(geometric_cfg)
    cfg.setdefault('workers', kwargs.get('workers', 2))
    cfg.setdefault('progress', kwargs.get('progress', False))
    return find_geometric_pairs(
        train,
        held,
        exclude={(p.query_path, p.ref_path)
                 for p in hash_pairs},
        **cfg)
