# Copyright (c) mmext contributors. All rights reserved.
"""The caffemodel reader on hand-made bad files: each interpreted field
with a wrong wire type, bad dims, unpacked floats at scale, a FIFO and a
directory. Valid layers are written by ``protobuf``; the bad layer is
appended as raw wire-format bytes (protobuf concatenates messages)."""
import os
import struct
import time
import tracemalloc

import numpy as np
import pytest

import mmext.utils.caffemodel as caffemodel
from mmext.utils.caffemodel import CaffeModelError, read_caffemodel
from .test_caffemodel_fuzz import NET, _encode, bounded


def key(field, wire):
    return _encode(field << 3 | wire)


def ld(field, payload):
    return key(field, 2) + _encode(len(payload)) + payload


def shape(dims):
    return ld(7, ld(1, b''.join(_encode(d) for d in dims)))


def floats(values):
    return ld(5, np.asarray(values, '<f4').tobytes())


def layer(name, blobs, type_=b'InnerProduct'):
    return ld(100,
              ld(1, name) + ld(2, type_) + b''.join(ld(7, b) for b in blobs))


def good_net():
    net = NET[True](name=b'net')
    conv = net.layer.add(name='conv1', type='Convolution')
    blob = conv.blobs.add()
    blob.shape.dim.extend([2, 3])
    blob.data.extend(range(6))
    return net.SerializeToString()


def write(tmp_path, raw):
    path = tmp_path / 'bad.caffemodel'
    path.write_bytes(good_net() + raw)
    return str(path)


def refused(path, *parts):
    with bounded(), pytest.raises(CaffeModelError) as e:
        read_caffemodel(path)
    msg = str(e.value)
    assert '\n' not in msg and path in msg, msg
    for part in parts:
        assert part in msg, msg
    return msg


SEVEN = np.arange(7, dtype=np.float32)


@pytest.mark.parametrize(
    'raw,parts',
    [
        # data = 5 as varints: read as byte offsets before (garbage weights)
        (layer(b'cls', [
            shape([7]) +
            b''.join(key(5, 0) + _encode(100 + i) for i in range(7))
        ]), ["layer 'cls': blob 0: field 5 (float data) has wire type 0"]),
        (layer(b'cls', [shape([1]) + key(8, 5) + struct.pack('<f', 1)]),
         ['field 8 (double_data) has wire type 5 (fixed32)']),
        (layer(b'cls', [key(7, 0) + b'\x07' + floats(SEVEN)]),
         ['field 7 (BlobShape shape) has wire type 0']),
        (layer(b'cls', [ld(7,
                           key(1, 5) + b'\x07\0\0\0') + floats(SEVEN)]),
         ['field 1 (BlobShape.dim) has wire type 5']),
        (layer(b'cls', [ld(1, b'\x07') + floats(SEVEN)]),
         ['field 1 (int32 legacy shape) has wire type 2']),
        (ld(100,
            key(1, 0) + b'\x05'), [
                'layer #1 (before its name): field 1 (string name) has wire '
                'type 0'
            ]),
        (ld(100,
            ld(1, b'cls') + key(7, 0) + b'\x01'),
         ["layer 'cls': field 7 (BlobProto blobs) has wire type 0"]),
        (ld(2,
            ld(4, b'old') + ld(5, b'x')),
         ["layer 'old': field 5 (enum type) has wire type 2"]),
        (key(100, 0) + b'\x01', ['field 100 (LayerParameter layer)']),
        (layer(b'cls', [shape([7]) + ld(5, b'\0' * 27)]),
         ['packed field 5 has 27 bytes, not a multiple of 4']),
        (layer(b'cls', [shape([1]) + floats([1]) + ld(8, b'\0' * 8)]),
         ['both float data and double_data']),
        (layer(b'cls', [shape([7]) + shape([7])]), ['two shape fields']),
        (ld(100, ld(1, b'c\xffls')), ['layer name is not UTF-8']),
        (ld(100,
            ld(1, b'cls') + key(7, 2) + _encode(1 << 30)),
         ['field 7 declares 1073741824 bytes, its message has 0 left']),
        (ld(100,
            ld(1, b'cls') + key(9, 2) + b'\x80' * 5 + b'\0'),
         ["field 9 length takes 6 bytes / exceeds protobuf's 2 GiB"]),
        (ld(100,
            ld(1, b'cls') + key(9, 2) + _encode(1 << 40)),
         ["field 9 length takes 6 bytes / exceeds protobuf's 2 GiB"]),
        (ld(100,
            ld(1, b'cls') + key(9, 3)), ['wire type 3 (field 9)']),
        (ld(100,
            ld(1, b'cls') + key(9, 5) + b'\0\0'),
         ['fixed32 field 9 runs past the end of its message']),
        (ld(100,
            ld(1, b'cls') + key(9, 0) + b'\xff' * 11),
         ['varint longer than 10 bytes']),
    ],
    ids=[
        'data-varint', 'double-fixed32', 'shape-varint', 'dim-fixed32',
        'legacy-bytes', 'name-varint', 'blobs-varint', 'v1-type-bytes',
        'layer-varint', 'packed-27-bytes', 'float-and-double', 'two-shapes',
        'name-not-utf8', 'length-past-end', 'length-6-bytes',
        'length-over-2gib', 'group', 'fixed32-cut', 'long-varint'
    ])
def test_wrong_wire_types_and_lengths_are_named(tmp_path, raw, parts):
    refused(write(tmp_path, raw), *parts, '(byte ')


def test_error_names_the_layer_when_blobs_precede_its_name(tmp_path):
    raw = ld(100, ld(7, shape([-1]) + floats([1])) + ld(1, b'late'))
    refused(write(tmp_path, raw), "layer 'late': blob 0: shape dim -1")


@pytest.mark.parametrize(
    'dims,parts',
    [
        ([-1, -7], ['shape dim -1 is negative']),
        # int64 product 7 * 7 * inverse(7) wraps to 7 = the value count
        ([7, 7, pow(7, -1, 1 << 64)], ['above INT_MAX']),
        # each dim below INT_MAX, product (2^31-1)^3 != 7 without wrapping
        ([(1 << 31) - 1] * 3,
         [f'holds {((1 << 31) - 1)**3} values, the blob stores 7']),
        ([1] * 33, ["more than 32 axes (caffe's limit)"]),
        ([7, 0], ['holds 0 values, the blob stores 7']),
    ],
    ids=['negative', 'int64-wrap', 'huge-product', '33-axes', 'zero'])
def test_bad_dims_are_refused_before_allocating(tmp_path, dims, parts):
    refused(
        write(tmp_path, layer(b'cls', [shape(dims) + floats(SEVEN)])),
        "layer 'cls': blob 0: ", *parts)


def test_negative_legacy_dim_is_refused(tmp_path):
    legacy = key(1, 0) + _encode(-1) + key(2, 0) + _encode(-7)
    refused(
        write(tmp_path, layer(b'cls', [legacy + floats(SEVEN)])),
        'legacy shape field 1 is negative (-1)')


def test_legacy_shape_wins_as_in_caffe(tmp_path):
    """caffe's Blob::FromProto uses num/channels/height/width when any is
    set, whatever ``shape`` says."""
    legacy = b''.join(
        key(f, 0) + _encode(d) for f, d in enumerate((1, 1, 7, 1), 1))
    layers = read_caffemodel(
        write(tmp_path, layer(b'cls', [shape([7]) + legacy + floats(SEVEN)])))
    assert layers['cls'].blobs[0].shape == (1, 1, 7, 1)


def test_unpacked_floats_cost_no_object_per_float(tmp_path):
    """1 MB of single fixed32 records (plus runs broken by packed chunks):
    the values protobuf reads, at a numpy array's memory cost."""
    n = 200_000
    values = np.random.RandomState(0).randn(n).astype(np.float32)
    records = np.empty((n, 5), np.uint8)
    records[:, 0] = key(5, 5)[0]
    records[:, 1:] = values.view(np.uint8).reshape(n, 4)
    broken = b''.join(
        key(5, 5) + v.tobytes() + floats(values[i + 1:i + 3])
        for i, v in enumerate(values[:30:3]))
    blob = shape([n + 30]) + records.tobytes() + broken
    path = write(tmp_path, layer(b'big', [blob]))
    tracemalloc.start()
    start = time.perf_counter()
    got = read_caffemodel(path)['big'].blobs[0]
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    want = NET[False].FromString(open(path, 'rb').read()).layer[1].blobs[0]
    np.testing.assert_array_equal(got, np.array(want.data, np.float32))
    assert got[:n].tobytes() == values.tobytes()
    assert peak < got.nbytes + (256 << 10), peak  # the old reader: 100x
    assert seconds < 5, seconds  # the old reader: ~1 s here, 17 s at 20 MB


def test_field_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(caffemodel, 'MAX_FIELDS', 50)
    raw = ld(100, ld(1, b'many') + (key(3, 2) + b'\0') * 60)
    refused(
        write(tmp_path, raw), "layer 'many': more than 50 protobuf "
        'fields')


def test_same_name_with_and_without_blobs(tmp_path):
    path = write(tmp_path, ld(100, ld(1, b'conv1') + ld(2, b'ReLU')))
    layers = read_caffemodel(path, with_empty=True)
    assert layers['conv1'].type == 'Convolution'  # the blobless one ignored
    assert layers['conv1'].blobs[0].shape == (2, 3)
    refused(
        write(tmp_path, layer(b'conv1', [shape([1]) + floats([1])])),
        "layer 'conv1' appears twice with blobs")


@pytest.mark.parametrize('kind', ['fifo', 'dir', 'empty', 'prototxt'])
def test_not_a_caffemodel_file(tmp_path, kind):
    path = tmp_path / 'x.caffemodel'
    if kind == 'fifo':
        os.mkfifo(path)  # open() would wait for a writer forever
    elif kind == 'dir':
        path.mkdir()
    else:
        path.write_bytes(b'' if kind == 'empty' else b'name: "ResNet"\n')
    refused(
        str(path), {
            'fifo': 'is a FIFO, not a regular file',
            'dir': 'is a directory, not a regular file',
            'empty': 'is empty',
            'prototxt': 'is a text prototxt'
        }[kind])
