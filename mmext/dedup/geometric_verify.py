# Copyright (c) mmext contributors. All rights reserved.
"""Geometric verification of one candidate pair (the second half of
:mod:`mmext.dedup.geometric`): ratio-test matches, a RANSAC similarity
(``cv2.estimateAffinePartial2D``) and the acceptance rule, with the
evidence (transform, inliers, overlap) a report shows."""
from dataclasses import asdict, dataclass, field
from typing import Optional

import cv2
import numpy as np

__all__ = ['DEFAULT_RULE', 'GeometricPair', 'verify_pair']

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
