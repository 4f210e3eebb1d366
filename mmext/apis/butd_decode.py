# Copyright (c) mmext contributors. All rights reserved.
"""Reading, decoding and caffe-preprocessing images for BUTD extraction,
in data-loader workers while the network runs.

``tools/generate_tsv.py`` (and this extractor before) read, decoded,
resized and ran each image in turn, so the network waited for the decoder.
:func:`decoded_inputs` runs :class:`DecodedImages` in a
``torch.utils.data.DataLoader`` (in order): a worker reads the bytes,
decodes with OpenCV and runs :func:`~mmext.models.detectors.butd.
butd_faster_rcnn.image_to_input`; the main process only runs the network.
An unreadable image comes back as an error string (listed in
``failed_rank<r>.txt``), never as an exception that would end a worker.

Decoding memory is bounded for the run, as in the URL downloader: every
worker holds a share of one :class:`SharedDecodeBudget` (the downloader's
:class:`~mmext.datasets.downloaders.limits.DecodeBudget` with its count in
shared memory, since workers are processes) sized from the image header
before decoding. Inputs waiting for the network add at most ``2 *
workers`` network inputs (the DataLoader's prefetch; <= 12 MB each at the
default 1000-pixel ``max_size``).
"""
import io
import multiprocessing
import warnings

import numpy as np
import torch

from mmext.datasets.downloaders.limits import DecodeBudget
from mmext.models.detectors.butd.butd_faster_rcnn import image_to_input
from mmext.models.detectors.butd.preprocess import caffe_im_scale
from mmext.utils.fileio import open_regular_file

__all__ = [
    'DecodedImages', 'SharedDecodeBudget', 'decoded_inputs', 'read_image',
    'decode_bytes_needed'
]

#: peak bytes per image pixel while decoding and preprocessing: the uint8
#: BGR image (3) and its float32 mean-subtracted copy (12)
DECODE_BYTES_PER_PIXEL = 15
#: per network-input pixel: the float32 resize output and the CHW tensor
INPUT_BYTES_PER_PIXEL = 24


def _read_bytes(path):
    """The file's bytes; a FIFO or directory is refused without blocking,
    and non-UTF-8 names work."""
    with open_regular_file(path, 'image') as f:
        data = f.read()
    if not data:
        raise ValueError('empty file')
    return data


def _decode(data):
    import cv2
    im = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if im is None:
        raise ValueError(f'OpenCV cannot decode it ({len(data)} bytes)')
    return im


def read_image(path):
    """BGR array of an image file (its bytes decoded by ``cv2.imdecode``,
    not the path: a FIFO never blocks, odd names work)."""
    return _decode(_read_bytes(path))


def decode_bytes_needed(data, test_cfg):
    """Bytes that decoding and preprocessing ``data`` take at the peak,
    from the image header (PIL reads only the header), or None when PIL
    cannot read the header."""
    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
    except Image.DecompressionBombError:  # more than 2 x PIL's limit
        return 2 * Image.MAX_IMAGE_PIXELS * DECODE_BYTES_PER_PIXEL
    except Exception:  # noqa: B902 (any header PIL does not parse)
        return None
    cfg = {'target_size': 600, 'max_size': 1000, **(test_cfg or {})}
    scale = caffe_im_scale(h, w, cfg['target_size'], cfg['max_size'])
    out_px = int(np.floor(h * scale + 0.5)) * int(np.floor(w * scale + 0.5))
    return h * w * DECODE_BYTES_PER_PIXEL + out_px * INPUT_BYTES_PER_PIXEL


class SharedDecodeBudget(DecodeBudget):
    """:class:`DecodeBudget` shared by processes: ``used`` / ``peak`` live
    in shared memory and the condition is a ``multiprocessing`` one, so
    data-loader workers wait for each other (the downloader's budget only
    binds threads of one process).

    Args:
        max_bytes (int): The budget.
        context (multiprocessing context, optional): That of the workers.
            Defaults to the default context.
    """

    def __init__(self, max_bytes, context=None):
        ctx = context or multiprocessing.get_context()
        self._used = ctx.Value('q', 0, lock=False)
        self._peak = ctx.Value('q', 0, lock=False)
        super().__init__(max_bytes)
        self._cond = ctx.Condition()

    @property
    def used(self):
        return self._used.value

    @used.setter
    def used(self, value):
        self._used.value = value

    @property
    def peak(self):
        return self._peak.value

    @peak.setter
    def peak(self, value):
        self._peak.value = value


def _image_errors():
    try:
        import cv2
    except ImportError:
        return OSError, ValueError
    return OSError, ValueError, cv2.error


class DecodedImages(torch.utils.data.Dataset):
    """Image paths -> BUTD network inputs, one dict per image.

    Items are ``path``, ``x`` / ``scale`` / ``image_hw``
    (:func:`image_to_input`) and ``error`` (None, or why the image cannot
    be read: an unreadable image does not raise).

    Args:
        paths (list[str]): Image files.
        test_cfg (dict): The model's ``test_cfg`` (sizes, means).
        read_image (callable, optional): path -> BGR array. Defaults to
            :func:`read_image` under ``budget``.
        budget (DecodeBudget, optional): Held while decoding with the
            default reader; an image whose header needs more than all of
            it fails, one without a header PIL reads takes all of it.
            Defaults to None (no bound: one image at a time in process).
    """

    def __init__(self, paths, test_cfg, read_image=None, budget=None):
        self.paths = list(paths)
        self.test_cfg = dict(test_cfg)
        self.read_image = read_image
        self.budget = budget

    def __len__(self):
        return len(self.paths)

    def _load(self, path):
        if self.read_image is not None:
            return image_to_input(self.read_image(path), self.test_cfg)
        data = _read_bytes(path)
        if self.budget is None:
            return image_to_input(_decode(data), self.test_cfg)
        need = decode_bytes_needed(data, self.test_cfg)
        need = self.budget.max_bytes if need is None else need
        if need > self.budget.max_bytes:
            raise ValueError(f'decoding needs {need >> 20} MiB, over the '
                             f'decode budget of {self.budget.max_bytes >> 20}'
                             ' MiB; raise --decode-budget-mb')
        with self.budget.hold(need):
            return image_to_input(_decode(data), self.test_cfg)

    def __getitem__(self, index):
        path = self.paths[index]
        try:
            x, scale, image_hw = self._load(path)
        except _image_errors() as e:
            return dict(path=path, error=str(e))
        return dict(path=path, x=x, scale=scale, image_hw=image_hw, error=None)


def _as_is(item):
    return item


def decoded_inputs(dataset, workers=0):
    """Yield ``dataset``'s items in order: from ``workers`` DataLoader
    processes (decoding ahead while the caller runs the network), or in
    this process when 0. Close the generator to stop the workers.

    Forked workers must not call ``cv2.setNumThreads`` (it waits for
    ever on the thread pool OpenCV had in the parent, measured with 5.1).
    """
    if workers == 0 or len(dataset) == 0:
        for i in range(len(dataset)):
            yield dataset[i]
        return
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        collate_fn=_as_is)
    it = iter(loader)
    try:
        yield from it
    finally:
        del it  # its __del__ stops the workers
