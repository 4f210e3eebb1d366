# Copyright (c) mmext contributors. All rights reserved.
"""The BUTD caffe model's input: py-faster-rcnn's ``_get_image_blob``.

BGR float32 → subtract ``PIXEL_MEANS`` **before** resizing (no std) →
scale = ``target / min(H, W)`` unless ``round(scale · max(H, W)) > max``,
then ``max / max(H, W)`` → ``cv2.resize(fx=fy=scale, INTER_LINEAR)``.

With OpenCV installed the resize is OpenCV's, exactly as the reference.
Without it the ``'torch'`` backend uses ATen's bilinear kernel with
cv2's output size (``round(H · s)``) *and* cv2's source mapping
(``(dst + 0.5) / s - 0.5``, edge-clamped, no antialiasing), which is the
same formula: on random images it differs from OpenCV by float rounding
only (measured: < 1e-5 for small images; up to 0.03 on the 0-255 range
where source coordinates exceed ~1000, as both compute the interpolation
weights in float32), for up- and down-scaling.
"""
import numpy as np
import torch

__all__ = ['PIXEL_MEANS_BGR', 'caffe_im_scale', 'caffe_preprocess']

#: cfg.PIXEL_MEANS of py-faster-rcnn (BGR)
PIXEL_MEANS_BGR = (102.9801, 115.9465, 122.7717)


def caffe_im_scale(height, width, target_size=600, max_size=1000):
    """Resize factor: shorter side to ``target_size`` unless the longer
    side would exceed ``max_size`` (rounded with ``np.round``)."""
    scale = float(target_size) / float(min(height, width))
    if np.round(scale * max(height, width)) > max_size:
        scale = float(max_size) / float(max(height, width))
    return scale


def _have_cv2():
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def _resize_torch(im, scale):
    h, w = im.shape[:2]
    # cv2's dsize for fx/fy: saturate_cast<int> rounds half away from 0
    out_hw = [int(np.floor(h * scale + 0.5)), int(np.floor(w * scale + 0.5))]
    x = torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None]
    # explicit scales: map with 1/scale like cv2, not with in/out sizes
    y = torch.ops.aten.upsample_bilinear2d(x, out_hw, False, scale, scale)
    return y[0].permute(1, 2, 0).numpy()


def caffe_preprocess(img_bgr,
                     target_size=600,
                     max_size=1000,
                     pixel_means=PIXEL_MEANS_BGR,
                     backend='auto'):
    """Image → network input of the BUTD caffe model.

    Args:
        img_bgr (np.ndarray): (H, W, 3) BGR image (``cv2.imread`` order);
            a (H, W) grey image is repeated to 3 channels.
        target_size (int): Shorter side. Defaults to 600.
        max_size (int): Longer-side limit. Defaults to 1000.
        pixel_means (Sequence[float]): BGR means. Defaults to
            :data:`PIXEL_MEANS_BGR`.
        backend (str): ``'cv2'``, ``'torch'`` or ``'auto'`` (cv2 when
            installed). Defaults to ``'auto'``.

    Returns:
        tuple[Tensor, float]: (1, 3, H', W') float32 input and the scale.
    """
    im = np.asarray(img_bgr)
    if im.ndim == 2:
        im = np.repeat(im[:, :, None], 3, axis=2)
    if im.ndim != 3 or im.shape[2] != 3:
        raise ValueError(f'caffe_preprocess: expected an (H, W, 3) BGR '
                         f'image, got shape {im.shape}')
    im = im.astype(np.float32, copy=True)
    im -= np.asarray(pixel_means, dtype=np.float32)
    scale = caffe_im_scale(im.shape[0], im.shape[1], target_size, max_size)
    if backend == 'auto':
        backend = 'cv2' if _have_cv2() else 'torch'
    if backend == 'cv2':
        import cv2
        im = cv2.resize(
            im, None, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    elif backend == 'torch':
        im = _resize_torch(im, scale)
    else:
        raise ValueError(f"caffe_preprocess: backend {backend!r} is not "
                         "one of 'auto', 'cv2', 'torch'")
    x = torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None]
    return x.contiguous(), scale
