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
from dataclasses import asdict, dataclass, field
from typing import Optional

import cv2
import numpy as np

from .geometric_index import DescriptorIndex

__all__ = [
    'DEFAULT_RULE', 'GeometricPair', 'verify_pair', 'candidate_pairs',
    'find_geometric_pairs', 'find_leaks_geometric'
]

#: Acceptance rule, measured in ``benchmarks/dedup_geometric.py`` (19
#: photo halves, 6 generated flowers; 475 planted copies, 12 025 distinct
#: pairs) and on the ``make demo`` data (408 x 204 generated flowers):
#: distinct photos reach <= 10 inliers (brute force over every pair); the
#: demo's flowers, whose rosettes are one drawn shape at other sizes and
#: angles, reach 14 inliers but a support (inliers / keypoints of the
#: overlap) <= 0.030; planted copies have >= 12 inliers and support >=
#: 0.042 except two 11-inlier rotations of the binary 'horse' silhouette.
#: Limit: 1,638 x 272 generated 256-px flowers (one drawn rosette per class,
#: the same shape under a similarity) give 42 passing pairs of 445,536.
DEFAULT_RULE = dict(
    min_inliers=12,
    min_coverage=0.02,
    min_support=0.035,
    max_scale=8.0,
    ratio=0.8,
    reproj=4.0)


@dataclass
class GeometricPair:
    """A training image that shows a held-out image's content.

    Attributes:
        query_path (str): Training image.
        ref_path (str): Held-out image.
        inliers (int): Matches consistent with ``transform``.
        matches (int): Ratio-test matches tried.
        overlap (float): Fraction of the held-out image covered by the
            training image mapped through ``transform``.
        coverage (float): Convex hull area of the inliers / area, the
            smaller of the two images' values.
        support (float): Inliers / keypoints inside the overlap (the
            fewer of the two images').
        transform (list): 2 x 3 similarity, training -> held-out pixels of
            the resized images.
        angle (float): Rotation in degrees.
        scale (float): Scale factor.
        query_size (tuple): Resized training image ``(w, h)``.
        ref_size (tuple): Resized held-out image ``(w, h)``.
        query_box (tuple): Trimmed part of the training image
            (:attr:`ImageFeatures.box`), to map positions to its pixels.
        ref_box (tuple): The same for the held-out image.
        query_points (list): Inlier positions in the training image.
        ref_points (list): Their matches in the held-out image.
        distance (None): No Hamming distance (the hash pairs' column).
        variant (str): ``'geometric'``.
        stage (str): ``'geometric'``.
    """
    query_path: str
    ref_path: str
    inliers: int
    matches: int
    overlap: float
    coverage: float
    support: float
    transform: list
    angle: float
    scale: float
    query_size: tuple = ()
    ref_size: tuple = ()
    query_box: tuple = ()
    ref_box: tuple = ()
    query_points: list = field(default_factory=list, repr=False)
    ref_points: list = field(default_factory=list, repr=False)
    distance: Optional[int] = None
    variant: str = 'geometric'
    stage: str = 'geometric'
    query_index: int = -1
    ref_index: int = -1

    def to_dict(self):
        return asdict(self)


def _unique_ratio_matches(desc_a, desc_b, ratio):
    """Lowe-ratio matches ``a -> b``, at most one per keypoint of ``b``
    (without it, 500 keypoints of one image pile onto the 10 of a flat
    one and make up 'inliers')."""
    if len(desc_a) < 2 or len(desc_b) < 2:
        return np.zeros((0, 2), np.int64)
    knn = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(desc_a, desc_b, k=2)
    best = {}
    for m in knn:
        if len(m) == 2 and m[0].distance < ratio * m[1].distance:
            old = best.get(m[0].trainIdx)
            if old is None or m[0].distance < old.distance:
                best[m[0].trainIdx] = m[0]
    return np.array(
        sorted((m.queryIdx, m.trainIdx) for m in best.values()),
        np.int64).reshape(-1, 2)


def _hull_fraction(points, size):
    if len(points) < 3:
        return 0.0
    hull = cv2.convexHull(points.astype(np.float32))
    return float(cv2.contourArea(hull)) / float(size[0] * size[1])


def _overlap(matrix, query_size, ref_size):
    """Area of the held-out image covered by the mapped training image."""
    w, h = query_size
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    mapped = corners @ matrix[:, :2].T + matrix[:, 2]
    rw, rh = ref_size
    ref = np.array([[0, 0], [rw, 0], [rw, rh], [0, rh]], np.float32)
    area, _ = cv2.intersectConvexConvex(
        cv2.convexHull(mapped.astype(np.float32)), ref)
    return float(area) / float(rw * rh)


def _support(matrix, query, ref, inliers):
    """Inliers / keypoints of the overlap: the smaller of the two images'
    keypoints that fall inside the other image under ``matrix``. A copy
    repeats most of its keypoints; two symmetric shapes that happen to fit
    one similarity share a few."""
    full = np.vstack([matrix, [0, 0, 1]])
    inverse = np.linalg.inv(full)[:2]
    counts = []
    for pts, m, (w, h) in ((query.xy, matrix, ref.size), (ref.xy, inverse,
                                                          query.size)):
        mapped = pts @ m[:, :2].T + m[:, 2]
        counts.append(int(((mapped >= 0) & (mapped <= (w, h))).all(1).sum()))
    return inliers / max(1, min(counts))


def verify_pair(query,
                ref,
                min_inliers=12,
                min_coverage=0.02,
                min_support=0.035,
                max_scale=8.0,
                ratio=0.8,
                reproj=4.0,
                accept_only=True):
    """Match two :class:`~mmext.dedup.geometric_features.ImageFeatures`
    and fit a similarity with RANSAC.

    Args:
        query (ImageFeatures): Training image features.
        ref (ImageFeatures): Held-out image features.
        min_inliers (int): Fewest inliers of a leak. Defaults to 12.
        min_coverage (float): Smallest inlier hull area (fraction of each
            image). Defaults to 0.02.
        min_support (float): Smallest inliers / keypoints of the overlap
            (the fewer of the two images'). Defaults to 0.035.
        max_scale (float): Largest scale change either way. Defaults to 8.
        ratio (float): Lowe's ratio. Defaults to 0.8.
        reproj (float): RANSAC inlier distance (pixels of the resized
            images). Defaults to 4.
        accept_only (bool): Return None for a rejected pair (else the
            evidence with ``accepted`` set). Defaults to True.

    Returns:
        dict | None: ``inliers``, ``matches``, ``overlap``, ``coverage``,
        ``support``, ``transform``, ``angle``, ``scale``, the inlier points
        and ``accepted``.
    """
    pairs = _unique_ratio_matches(query.desc, ref.desc, ratio)
    evidence = dict(inliers=0, matches=len(pairs), accepted=False)
    # fewer matches than min_inliers cannot pass: skip RANSAC (most pairs)
    if len(pairs) >= max(3, min_inliers if accept_only else 3):
        src, dst = query.xy[pairs[:, 0]], ref.xy[pairs[:, 1]]
        # OpenCV's RANSAC draws from a fixed-seed RNG: deterministic
        matrix, mask = cv2.estimateAffinePartial2D(
            src,
            dst,
            method=cv2.RANSAC,
            ransacReprojThreshold=reproj,
            maxIters=500,  # 1e-5 to miss a 15 % inlier ratio
            confidence=0.999)
        if matrix is not None:
            keep = mask.ravel().astype(bool)
            scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
            coverage = min(
                _hull_fraction(src[keep], query.size),
                _hull_fraction(dst[keep], ref.size))
            support = _support(matrix, query, ref, int(keep.sum()))
            evidence.update(
                inliers=int(keep.sum()),
                support=round(support, 4),
                coverage=round(coverage, 4),
                overlap=round(_overlap(matrix, query.size, ref.size), 4),
                transform=np.round(matrix, 5).tolist(),
                angle=round(
                    float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0]))),
                    2),
                scale=round(scale, 4),
                query_points=np.round(src[keep], 1).tolist(),
                ref_points=np.round(dst[keep], 1).tolist())
            evidence['accepted'] = bool(
                evidence['inliers'] >= min_inliers and coverage >= min_coverage
                and support >= min_support
                and 1 / max_scale <= scale <= max_scale)
    if accept_only and not evidence['accepted']:
        return None
    return evidence


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
