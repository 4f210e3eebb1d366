# Copyright (c) mmext contributors. All rights reserved.
"""Read the blobs of a binary ``.caffemodel`` without caffe or ``protoc``.

A caffemodel is a serialized ``NetParameter`` (BVLC
``src/caffe/proto/caffe.proto``). Only the few fields that carry weights are
decoded here with a small protobuf wire-format reader; everything else
(layer parameters, including forks' private fields such as the
bottom-up-attention ``roi_pooling_param``) is skipped by wire type, so a
custom caffe fork's file reads without its ``caffe.proto``.

Fields read (field numbers of caffe.proto):

- ``NetParameter``: ``name`` = 1, ``layer`` = 100 (``LayerParameter``),
  legacy ``layers`` = 2 (``V1LayerParameter``).
- ``LayerParameter``: ``name`` = 1, ``type`` = 2 (string), ``blobs`` = 7.
- ``V1LayerParameter``: ``name`` = 4, ``type`` = 5 (enum), ``blobs`` = 6.
- ``BlobProto``: ``num/channels/height/width`` = 1-4 (legacy 4-d shape),
  ``data`` = 5 (float), ``shape`` = 7 (``BlobShape.dim`` = 1, int64),
  ``double_data`` = 8. Repeated numbers are read packed or unpacked.

The file is memory-mapped, every blob is copied once into its own numpy
array and the mapped pages of each layer are released once it is read, so a
250 MB model is not held twice (``protobuf``'s ``ParseFromString`` would
hold the file's bytes and the parsed message; measured on a 248 MB file:
peak RSS + 250 MB).
"""
import mmap
import struct
from collections import OrderedDict

import numpy as np

__all__ = ['CaffeModelError', 'CaffeLayer', 'read_caffemodel']

# V1LayerParameter.LayerType values of the layers that carry blobs
_V1_TYPES = {4: 'Convolution', 14: 'InnerProduct', 39: 'Deconvolution'}


class CaffeModelError(ValueError):
    """The file is not a readable caffemodel."""


class CaffeLayer:
    """One layer of a caffemodel: its name, type and blobs.

    Attributes:
        name (str): Layer name (e.g. ``'res2a_branch2a'``).
        type (str): Layer type (``'Convolution'``, ``'BatchNorm'``, ...);
            legacy V1 layers give the enum name or ``'V1:<number>'``.
        blobs (list[np.ndarray]): float32 (or float64 for ``double_data``)
            arrays shaped by ``shape`` or the legacy num/channels/height/
            width.
    """

    def __init__(self, name, type, blobs):
        self.name = name
        self.type = type
        self.blobs = blobs

    def __repr__(self):
        shapes = [tuple(b.shape) for b in self.blobs]
        return f'CaffeLayer({self.name!r}, {self.type!r}, {shapes})'


def _varint(buf, pos, end):
    result = shift = 0
    while True:
        if pos >= end:
            raise CaffeModelError('truncated varint')
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CaffeModelError('varint longer than 10 bytes')


def _fields(buf, start, end):
    """Yield ``(field, wire_type, value_or_span)`` of one message.

    Varints give their value; length-delimited fields give ``(pos, end)``;
    fixed32 / fixed64 give their byte offset.
    """
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield field, wire, value
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise CaffeModelError(
                    f'field {field} runs {pos + length - end} bytes past '
                    'its message (truncated file?)')
            yield field, wire, (pos, pos + length)
            pos += length
        elif wire == 5:
            yield field, wire, pos
            pos += 4
        elif wire == 1:
            yield field, wire, pos
            pos += 8
        else:  # groups (3/4) are not used by caffe.proto
            raise CaffeModelError(f'unsupported wire type {wire} at byte '
                                  f'{pos} (not a caffemodel?)')
    if pos != end:
        raise CaffeModelError('message overruns its length (truncated?)')


def _packed_varints(buf, span):
    pos, end = span
    out = []
    while pos < end:
        value, pos = _varint(buf, pos, end)
        out.append(value - (1 << 64) if value >= 1 << 63 else value)
    return out


def _read_blob(buf, start, end, release):
    legacy = {}
    shape = None
    chunks = {5: [], 8: []}  # float data, double data (bytes)
    for field, wire, value in _fields(buf, start, end):
        if field in (1, 2, 3, 4) and wire == 0:
            legacy[field] = value
        elif field == 7 and wire == 2:
            shape = []
            for f, w, v in _fields(buf, *value):
                if f == 1 and w == 2:
                    shape += _packed_varints(buf, v)
                elif f == 1 and w == 0:
                    shape.append(v)
        elif field == 5:
            chunks[5].append(value if wire == 2 else (value, value + 4))
        elif field == 8:
            chunks[8].append(value if wire == 2 else (value, value + 8))
    if chunks[8] and not chunks[5]:
        data = _concat(buf, chunks[8], '<f8', release)
    else:
        data = _concat(buf, chunks[5], '<f4', release)
    if shape is None:
        shape = [legacy.get(i, 0)
                 for i in (1, 2, 3, 4)] if legacy else [data.size]
    if int(np.prod(shape)) != data.size:
        raise CaffeModelError(
            f'blob of shape {shape} holds {data.size} values')
    return data.reshape(shape)


_STEP = 1 << 24  # bytes copied out of the map between page releases


def _concat(buf, spans, dtype, release):
    """Copy the (packed or single) values of ``spans`` into one array,
    releasing the mapped pages behind the copy as it goes."""
    size = np.dtype(dtype).itemsize
    total = sum(e - s for s, e in spans)
    if total % size:
        raise CaffeModelError(f'blob data of {total} bytes is not a '
                              f'multiple of {size}')
    out = np.empty(total // size, dtype=dtype[1:])
    raw = out.view(np.uint8)
    pos = 0
    for s, e in spans:
        for a in range(s, e, _STEP):
            b = min(a + _STEP, e)
            raw[pos:pos + b - a] = np.frombuffer(buf[a:b], dtype=np.uint8)
            pos += b - a
            release(b)
    if dtype[0] == '<' and np.little_endian is False:  # pragma: no cover
        out.byteswap(inplace=True)
    return out


def _string(buf, span):
    return bytes(buf[span[0]:span[1]]).decode('utf-8', errors='replace')


def _read_layer(buf, span, v1, release):
    name_field, type_field, blobs_field = (4, 5, 6) if v1 else (1, 2, 7)
    name, type_, blobs = '', '', []
    for field, wire, value in _fields(buf, *span):
        if field == name_field and wire == 2:
            name = _string(buf, value)
        elif field == type_field:
            if v1 and wire == 0:
                type_ = _V1_TYPES.get(value, f'V1:{value}')
            elif wire == 2:
                type_ = _string(buf, value)
        elif field == blobs_field and wire == 2:
            blobs.append(_read_blob(buf, *value, release))
    return CaffeLayer(name, type_, blobs)


class _PageReleaser:
    """Drops the mapped pages of bytes already copied out, so the file is
    not resident a second time next to the arrays."""

    def __init__(self, mm):
        self.mm, self.done = mm, 0

    def __call__(self, end):
        end -= end % mmap.PAGESIZE
        if end > self.done and hasattr(self.mm, 'madvise'):
            self.mm.madvise(mmap.MADV_DONTNEED, self.done, end - self.done)
            self.done = end


def read_caffemodel(path, with_empty=False):
    """Read the layers of a binary caffemodel.

    Args:
        path (str): ``.caffemodel`` file.
        with_empty (bool): Also return layers without blobs (ReLU, ...).
            Defaults to False.

    Returns:
        OrderedDict[str, CaffeLayer]: Layers by name, in file order.

    Raises:
        CaffeModelError: The file is empty, truncated, a text prototxt, or
            has the same layer name twice with blobs.

    Example:
        >>> layers = read_caffemodel('resnet101_faster_rcnn_final.caffemodel')
        >>> layers['conv1'].blobs[0].shape
        (64, 3, 7, 7)
    """
    with open(path, 'rb') as f:
        try:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:
            raise CaffeModelError(f'{path} is empty; expected a binary '
                                  'caffemodel') from None
    buf = memoryview(mm)
    try:
        if bytes(buf[:6]) in (b'name: ', b'layer ', b'input:'):
            raise CaffeModelError(
                f'{path} is a text prototxt; give the binary .caffemodel '
                '(the weights), not the network definition')
        layers = OrderedDict()
        release = _PageReleaser(mm)
        for field, wire, value in _fields(buf, 0, len(buf)):
            if field in (100, 2) and wire == 2:
                layer = _read_layer(buf, value, field == 2, release)
                if not layer.blobs and not with_empty:
                    continue
                if layer.name in layers and layer.blobs:
                    raise CaffeModelError(f'{path}: layer {layer.name!r} '
                                          'appears twice with blobs')
                layers[layer.name] = layer
    except (CaffeModelError, IndexError, struct.error) as e:
        raise CaffeModelError(f'{path} is not a readable caffemodel ({e}); '
                              're-download it') from None
    finally:
        buf.release()
        mm.close()
    return layers
