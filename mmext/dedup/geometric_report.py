# Copyright (c) mmext contributors. All rights reserved.
"""Evidence pictures of geometric pairs (:mod:`mmext.dedup.geometric`).

:func:`draw_geometric_pair` puts the training and the held-out image side
by side and outlines the matched region in both: on the held-out image the
training image's frame mapped through the fitted similarity (clipped to
the held-out image, so it is the overlap), on the training image the
held-out frame mapped back, with the inlier keypoints as dots and a few of
their correspondences as lines. The hash report shows two thumbnails and
a distance; a crop or a 10° rotation needs the outline to be checked by
eye.
"""
import numpy as np
from PIL import Image, ImageDraw

from mmext.utils.images import thumbnail

__all__ = ['draw_geometric_pair', 'geometric_label']


def geometric_label(pair):
    """One line of evidence: inliers, overlap, rotation, scale."""
    return (f'{pair.inliers} inliers, overlap {pair.overlap:.0%}, '
            f'{pair.angle:+.0f}°, x{pair.scale:.2f}')


def _to_original(points, size, box):
    x0, y0, x1, y1 = box
    scale = np.array([(x1 - x0) / size[0], (y1 - y0) / size[1]])
    return np.asarray(points, np.float64).reshape(-1, 2) * scale + (x0, y0)


def _frame(size):
    w, h = size
    return np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)


def _clip(poly, size):
    """``poly`` clipped to the rectangle ``(0, 0, w, h)`` (Sutherland-
    Hodgman; both convex)."""
    w, h = size
    edges = ((0, 1, 0), (0, -1, w), (1, 1, 0), (1, -1, h))
    out = [tuple(p) for p in poly]
    for axis, sign, off in edges:
        inp, out = out, []
        for k, cur in enumerate(inp):
            prev = inp[k - 1]
            cin = sign * cur[axis] + off >= 0
            pin = sign * prev[axis] + off >= 0
            if cin != pin:
                t = (sign * prev[axis] + off) / (
                    sign * (prev[axis] - cur[axis]) or 1e-9)
                out.append((prev[0] + t * (cur[0] - prev[0]),
                            prev[1] + t * (cur[1] - prev[1])))
            if cin:
                out.append(cur)
        if not out:
            break
    return np.array(out, np.float64).reshape(-1, 2)


def draw_geometric_pair(pair, tile=240, max_lines=25):
    """The side-by-side evidence picture of one :class:`GeometricPair`.

    Args:
        pair (GeometricPair): An accepted pair.
        tile (int): Longer side of each image in the picture. Defaults to
            240.
        max_lines (int): Correspondences drawn as lines. Defaults to 25.

    Returns:
        PIL.Image.Image: RGB, ``2 * tile + 12`` wide; images the report
        cannot open are grey tiles (``skipped.csv`` says why).
    """
    matrix = np.asarray(pair.transform, np.float64)
    full = np.vstack([matrix, [0, 0, 1]])
    inverse = np.linalg.inv(full)[:2]
    # work-pixel polygons: training frame in the held-out image and back
    in_ref = _clip(
        _frame(pair.query_size) @ matrix[:, :2].T + matrix[:, 2],
        pair.ref_size)
    in_query = _clip(
        _frame(pair.ref_size) @ inverse[:, :2].T + inverse[:, 2],
        pair.query_size)
    pad = 4
    canvas = Image.new('RGB', (2 * tile + 3 * pad, tile + 2 * pad),
                       (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    anchors = []
    for col, (path, size, box, poly, pts) in enumerate(
        ((pair.query_path, pair.query_size, pair.query_box, in_query,
          pair.query_points), (pair.ref_path, pair.ref_size, pair.ref_box,
                               in_ref, pair.ref_points))):
        img = thumbnail(path, tile, fallback_color=(128, 128, 128))
        if max(img.size) < tile:  # small images: enlarge to see the outline
            k = tile / max(img.size)
            img = img.resize((round(img.width * k), round(img.height * k)))
        x0 = pad + col * (tile + pad)
        canvas.paste(img, (x0, pad))
        # original pixels -> thumbnail pixels
        factor = img.width / _original_width(path, img)
        to_tile = (lambda p, f=factor, x0=x0, size=size, box=box:
                   [(x0 + px * f, pad + py * f)
                    for px, py in _to_original(p, size, box)])
        if len(poly) >= 3:
            draw.polygon(to_tile(poly), outline=(255, 0, 0), width=2)
        dots = to_tile(pts) if len(pts) else []
        for x, y in dots:
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), outline=(0, 255, 0))
        anchors.append(dots)
    step = max(1, len(anchors[0]) // max(1, max_lines))
    for a, b in list(zip(*anchors))[::step]:
        draw.line((a, b), fill=(255, 200, 0), width=1)
    return canvas


def _original_width(path, img):
    """Width of the original image (to map its pixels onto ``img``)."""
    try:
        with Image.open(path) as orig:
            return orig.width
    except Exception:  # shown as a grey tile; nothing to map
        return img.width
