# Copyright (c) mmext contributors. All rights reserved.
"""Read the blobs of a binary ``.caffemodel`` without caffe or ``protoc``.

A caffemodel is a serialized ``NetParameter`` (BVLC
``src/caffe/proto/caffe.proto``). Only the few fields that carry weights are
decoded here with a small protobuf wire-format reader; everything else
(layer parameters, including forks' private fields such as the
bottom-up-attention ``roi_pooling_param``) is skipped by wire type, so a
custom caffe fork's file reads without its ``caffe.proto``.

Fields read (caffe.proto numbers) and the wire types accepted:
``NetParameter`` ``layer`` = 100 / V1 ``layers`` = 2 (messages);
``LayerParameter`` ``name`` = 1, ``type`` = 2 (UTF-8), ``blobs`` = 7;
``V1LayerParameter`` ``name`` = 4, ``type`` = 5 (enum varint), ``blobs``
= 6; ``BlobProto`` ``num/channels/height/width`` = 1-4 (int32 varints: the
legacy shape, which caffe prefers when present), ``data`` = 5 (packed or
single fixed32), ``shape`` = 7 (``BlobShape.dim`` = 1, packed or single
int64 varints), ``double_data`` = 8 (packed or single fixed64).

What a plain wire-format walk (our first version) lacked, checked here
before anything is read or allocated: the wire type of every interpreted
field (a varint was taken for a float's byte offset: garbage weights),
every length against the bytes left in its message, dims non-negative, at
most caffe's 32 axes of at most ``INT_MAX``, their exact product equal to
the number of values. Unpacked repeated floats are decoded as numpy strided
records (not one Python object per float: 20 MB of them took +545 MB and
17 s) and a file holds at most ``MAX_FIELDS`` protobuf fields, so time and
memory stay proportional to the file size. Every problem is one
:class:`CaffeModelError` line naming the file, layer, blob and byte.

The file is memory-mapped and its pages released once copied into the
blobs, so a 250 MB model is not held twice (``protobuf``'s parse would be:
peak RSS + 250 MB on a 248 MB file).
"""
import mmap
import os
from array import array
from collections import OrderedDict

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .fileio import InputFileError, open_regular_file

__all__ = ['CaffeModelError', 'CaffeLayer', 'read_caffemodel', 'MAX_FIELDS']

#: V1LayerParameter.LayerType values of the layers that carry blobs
_V1_TYPES = {4: 'Convolution', 14: 'InnerProduct', 39: 'Deconvolution'}
#: protobuf fields a caffemodel may hold (caffe writes a few per layer and
#: blob: ~10 000 for the BUTD ResNet-101); bounds the time of a crafted file
MAX_FIELDS = 1 << 20
_MAX_AXES = 32  # caffe's kMaxBlobAxes
_MAX_DIM = (1 << 31) - 1  # caffe's blob dims are int
_WIRE = {0: 'varint', 1: 'fixed64', 2: 'length-delimited', 5: 'fixed32'}
_U64 = (1 << 64) - 1


class CaffeModelError(InputFileError):
    """Not a readable caffemodel (message: file, layer, blob, byte)."""


class CaffeLayer:
    """One layer of a caffemodel: its name, type and blobs.

    Attributes:
        name (str): Layer name (e.g. ``'res2a_branch2a'``).
        type (str): Layer type (``'Convolution'``, ``'BatchNorm'``, ...);
            legacy V1 layers give the enum name or ``'V1:<number>'``.
        blobs (list[np.ndarray]): float32 (or float64 for ``double_data``)
            arrays shaped by the legacy num/channels/height/width or
            ``shape`` (1-d when the blob has neither).
    """

    def __init__(self, name, type, blobs):
        self.name = name
        self.type = type
        self.blobs = blobs

    def __repr__(self):
        shapes = [tuple(b.shape) for b in self.blobs]
        return f'CaffeLayer({self.name!r}, {self.type!r}, {shapes})'


class _Malformed(Exception):
    """A problem at byte ``pos``; ``where``: the layer / blob read."""

    def __init__(self, cause, pos):
        super().__init__(cause)
        self.cause, self.pos, self.where = cause, pos, []


def _int32(value):
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


class _Wire:
    """Protobuf wire-format walk over a byte buffer, with bounds checks."""

    def __init__(self, buf):
        self.buf = buf
        self.u8 = np.frombuffer(buf, np.uint8)
        self.fields_left = MAX_FIELDS

    def varint(self, pos, end):
        buf, result, shift, start = self.buf, 0, 0, pos
        while True:
            if pos >= end:
                raise _Malformed('varint runs past the end of its message',
                                 start)
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result & _U64, pos
            shift += 7
            if shift > 63:
                raise _Malformed('varint longer than 10 bytes', start)

    def fields(self, start, end):
        """Yield ``(field, wire, value, key_pos)`` of one message.

        Varints give their value, length-delimited fields ``(pos, end)``,
        fixed32 / fixed64 ``(pos, count, stride)``: a run of records with
        the same one-byte key (unpacked repeated) is yielded once.
        """
        pos = start
        while pos < end:
            self.fields_left -= 1
            if self.fields_left < 0:
                raise _Malformed(
                    f'more than {MAX_FIELDS} protobuf fields (caffe writes '
                    'a few per layer)', pos)
            at = pos
            key, pos = self.varint(pos, end)
            field, wire = key >> 3, key & 7
            if field == 0 or field > 0x1FFFFFFF:
                raise _Malformed(f'invalid field number {field}', at)
            if wire == 0:
                value, pos = self.varint(pos, end)
            elif wire == 2:
                length, body = self.varint(pos, end)
                if body - pos > 5 or length > _MAX_DIM:  # as protobuf
                    raise _Malformed(
                        f'field {field} length takes {body - pos} bytes / '
                        "exceeds protobuf's 2 GiB message limit", at)
                pos = body
                if length > end - pos:
                    raise _Malformed(
                        f'field {field} declares {length} bytes, its '
                        f'message has {end - pos} left (truncated file?)', at)
                value = (pos, pos + length)
                pos += length
            elif wire in (1, 5):
                size = 8 if wire == 1 else 4
                if size > end - pos:
                    raise _Malformed(
                        f'{_WIRE[wire]} field {field} runs past the end of '
                        'its message (truncated file?)', at)
                count = self._run(at, end, pos - at, size) \
                    if pos - at == 1 else 1
                value = (pos, count, pos - at + size)
                pos = at + count * (pos - at + size)
            else:  # groups (3/4) are not used by caffe.proto
                raise _Malformed(
                    f'wire type {wire} (field {field}) is not used by '
                    'caffe.proto (not a caffemodel?)', at)
            yield field, wire, value, at

    def _run(self, at, end, key_len, size):
        """How many ``key + value`` records in a row start at ``at``."""
        stride, key, buf = key_len + size, self.buf[at], self.buf
        limit = (end - at) // stride
        n = 1
        while n < min(limit, 8):  # short runs: no numpy call
            if buf[at + n * stride] != key:
                return n
            n += 1
        chunk = 64
        while n < limit:  # long runs: vectorised, O(run) in all
            m = min(chunk, limit - n)
            keys = self.u8[at + n * stride:at + (n + m) * stride:stride]
            bad = np.flatnonzero(keys != key)
            if bad.size:
                return n + int(bad[0])
            n, chunk = n + m, chunk * 2
        return n

    def string(self, span, what):
        try:
            return bytes(self.buf[span[0]:span[1]]).decode('utf-8')
        except UnicodeDecodeError as e:
            raise _Malformed(f'{what} is not UTF-8', span[0] + e.start)

    def copy_values(self, chunks, dtype, release):
        """Copy ``(pos, count, stride)`` records of ``dtype`` values into
        one array, releasing the mapped pages behind the copy."""
        size = dtype.itemsize
        out = np.empty(sum(chunks[1::3]), dtype=dtype.newbyteorder('='))
        raw = out.view(np.uint8).reshape(-1, size)
        row = 0
        for i in range(0, len(chunks), 3):
            pos, count, stride = chunks[i:i + 3]
            step = max(1, _STEP // stride)
            for a in range(0, count, step):
                m = min(step, count - a)
                start = pos + a * stride
                raw[row:row + m] = as_strided(
                    self.u8[start:start + (m - 1) * stride + size],
                    shape=(m, size),
                    strides=(stride, 1),
                    writeable=False)
                row += m
                release(start + m * stride)
        if not dtype.isnative:  # pragma: no cover - big-endian hosts
            out.byteswap(inplace=True)
        return out


_STEP = 1 << 24  # bytes copied out of the map between page releases


def _expect(wire, allowed, field, declared, at):
    if wire not in allowed:
        raise _Malformed(
            f'field {field} ({declared}) has wire type {wire} '
            f'({_WIRE.get(wire, "?")}), caffe.proto allows '
            f'{" or ".join(_WIRE[w] for w in allowed)}', at)


def _read_dims(w, span, dims):
    for field, wire, value, at in w.fields(*span):
        if field != 1:
            continue
        _expect(wire, (0, 2), 1, 'BlobShape.dim', at)
        if wire == 0:
            values = [value]
        else:
            values, pos = [], value[0]
            while pos < value[1] and len(dims) + len(values) <= _MAX_AXES:
                v, pos = w.varint(pos, value[1])
                values.append(v)
        for v in values:
            dim = v - (1 << 64) if v >= 1 << 63 else v  # int64
            if len(dims) == _MAX_AXES:
                raise _Malformed(
                    f'shape has more than {_MAX_AXES} axes '
                    "(caffe's limit)", at)
            if not 0 <= dim <= _MAX_DIM:
                raise _Malformed(
                    f'shape dim {dim} is negative or above INT_MAX', at)
            dims.append(dim)


def _read_blob(w, start, end, release):
    legacy, dims = {}, None
    chunks = {5: array('q'), 8: array('q')}  # (pos, count, stride) triples
    for field, wire, value, at in w.fields(start, end):
        if field in (1, 2, 3, 4):
            _expect(wire, (0, ), field, 'int32 legacy shape', at)
            legacy[field] = _int32(value)
            if legacy[field] < 0:
                raise _Malformed(
                    f'legacy shape field {field} is negative '
                    f'({legacy[field]})', at)
        elif field == 7:
            _expect(wire, (2, ), 7, 'BlobShape shape', at)
            if dims is not None:
                raise _Malformed('blob has two shape fields', at)
            dims = []
            _read_dims(w, value, dims)
        elif field in (5, 8):
            size = 4 if field == 5 else 8
            _expect(wire, (2, 5 if field == 5 else 1), field,
                    'float data' if field == 5 else 'double_data', at)
            if wire == 2:
                length = value[1] - value[0]
                if length % size:
                    raise _Malformed(
                        f'packed field {field} has {length} bytes, not a '
                        f'multiple of {size}', at)
                value = (value[0], length // size, size)
            chunks[field].extend(value)
    n_float, n_double = sum(chunks[5][1::3]), sum(chunks[8][1::3])
    if n_float and n_double:
        raise _Malformed('blob has both float data and double_data', start)
    if legacy:  # caffe's Blob::FromProto prefers the legacy 4-d shape
        dims = [legacy.get(i, 0) for i in (1, 2, 3, 4)]
    count = n_double or n_float
    if dims is None:
        dims = [count]
    if int(np.prod(dims, dtype=object)) != count:
        raise _Malformed(
            f'shape {dims} holds {int(np.prod(dims, dtype=object))} values, '
            f'the blob stores {count}', start)
    if n_double:
        data = w.copy_values(chunks[8], np.dtype('<f8'), release)
    else:
        data = w.copy_values(chunks[5], np.dtype('<f4'), release)
    return data.reshape(dims)


def _read_layer(w, span, v1, index, release):
    name_field, type_field, blobs_field = (4, 5, 6) if v1 else (1, 2, 7)
    name, type_, blob_spans = None, '', []
    try:
        for field, wire, value, at in w.fields(*span):
            if field == name_field:
                _expect(wire, (2, ), field, 'string name', at)
                name = w.string(value, 'layer name')
            elif field == type_field and v1:
                _expect(wire, (0, ), field, 'enum type', at)
                type_ = _V1_TYPES.get(_int32(value), f'V1:{_int32(value)}')
            elif field == type_field:
                _expect(wire, (2, ), field, 'string type', at)
                type_ = w.string(value, 'layer type')
            elif field == blobs_field:
                _expect(wire, (2, ), field, 'BlobProto blobs', at)
                blob_spans.append(value)
        blobs = []
        for i, (start, end) in enumerate(blob_spans):
            try:
                blobs.append(_read_blob(w, start, end, release))
            except _Malformed as e:
                e.where.insert(0, f'blob {i}')
                raise
    except _Malformed as e:
        e.where.insert(
            0, f'layer {name!r}'
            if name is not None else f'layer #{index} (before its name)')
        raise
    return CaffeLayer(name or '', type_, blobs)


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


def _read_net(mm, with_empty):
    """The layers, or raises ``_Malformed`` (the caller formats it)."""
    w = _Wire(memoryview(mm))
    try:
        layers, release = OrderedDict(), _PageReleaser(mm)
        index = 0
        for field, wire, value, at in w.fields(0, len(mm)):
            if field not in (100, 2):
                continue
            _expect(
                wire, (2, ), field, 'LayerParameter layer'
                if field == 100 else 'V1LayerParameter layers', at)
            layer = _read_layer(w, value, field == 2, index, release)
            index += 1
            prev = layers.get(layer.name)
            if prev is not None and prev.blobs and layer.blobs:
                raise _Malformed(
                    f'layer {layer.name!r} appears twice with blobs', at)
            if (layer.blobs or with_empty) and (prev is None
                                                or not prev.blobs):
                layers[layer.name] = layer
        return layers
    finally:  # no view of the map may outlive it
        w.u8 = None
        w.buf.release()


def read_caffemodel(path, with_empty=False):
    """Read the layers of a binary caffemodel.

    Args:
        path (str): ``.caffemodel`` file.
        with_empty (bool): Also return layers without blobs (ReLU, ...).
            Defaults to False.

    Returns:
        OrderedDict[str, CaffeLayer]: Layers by name, in file order.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CaffeModelError: Not a regular file (a FIFO or a directory), empty,
            a text prototxt, truncated, a field of the wrong wire type, a
            length past its message, a bad shape, the same layer name twice
            with blobs: one line naming the file, layer, blob and byte.

    Example:
        >>> path = 'resnet101_faster_rcnn_final.caffemodel'
        >>> layers = read_caffemodel(path)  # doctest: +SKIP
        >>> layers['conv1'].blobs[0].shape  # doctest: +SKIP
        (64, 3, 7, 7)
    """
    try:
        f = open_regular_file(path, 'caffemodel')
    except InputFileError as e:
        raise CaffeModelError(str(e)) from None
    with f:
        if os.fstat(f.fileno()).st_size == 0:
            raise CaffeModelError(f'caffemodel {path} is empty; expected a '
                                  'binary caffemodel: re-download it')
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        if mm[:6] in (b'name: ', b'layer ', b'input:'):
            raise CaffeModelError(
                f'caffemodel {path} is a text prototxt; give the binary '
                '.caffemodel (the weights), not the network definition')
        try:
            return _read_net(mm, with_empty)
        except _Malformed as e:
            where = ''.join(f'{w}: ' for w in e.where)
            message = (f'caffemodel {path}: {where}{e.cause} (byte {e.pos}); '
                       'not a readable caffemodel (damaged, or another '
                       'format): re-download it')
        raise CaffeModelError(message)
    finally:
        mm.close()
