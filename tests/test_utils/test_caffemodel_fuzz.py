# Copyright (c) mmext contributors. All rights reserved.
"""Fuzzing the caffemodel reader against the protobuf runtime.

Caffemodels are written by ``protobuf`` from the BVLC field numbers (the
message classes of ``test_butd_convert``, in a packed and an unpacked
variant), then damaged byte by byte: a field key's wire type flipped, a
length re-encoded (shorter, longer, huge), the file cut, dims set to
negative / huge / wrapping values. Whatever the bytes, ``read_caffemodel``
either returns exactly what protobuf parses (the caffe semantics applied:
legacy 4-d shape first, one of data / double_data, product of dims = number
of values) or raises :class:`CaffeModelError` in one line naming the file;
never another exception, never a hang (an interval timer), never more than
a 1 MiB allocation peak (``tracemalloc`` sees numpy's buffers too).
"""
import signal
import tracemalloc
from contextlib import contextmanager

import numpy as np
import pytest
from google.protobuf import (descriptor_pb2, descriptor_pool, message,
                             message_factory)
from hypothesis import given, settings
from hypothesis import strategies as st

from mmext.utils.caffemodel import CaffeModelError, read_caffemodel
from ..test_tools.test_butd_convert import MSG

_F = descriptor_pb2.FieldDescriptorProto
INT_MAX = (1 << 31) - 1
V1_TYPES = {4: 'Convolution', 14: 'InnerProduct', 39: 'Deconvolution'}
MEMORY_BOUND = 1 << 20
# ~5 s under the ci profile; HYPOTHESIS_PROFILE=fuzz-long runs more


def examples(n):
    return settings(max_examples=max(n, settings.default.max_examples))


def _messages(packed):
    """The test caffe.proto with numbers packed or not; strings mmext does
    not read (bottom, top, the net's name) as bytes, so protobuf does not
    refuse what the reader rightly skips."""
    fdp = descriptor_pb2.FileDescriptorProto()
    MSG['NetParameter'].DESCRIPTOR.file.CopyToProto(fdp)
    old, fdp.package = fdp.package, f'mmext_fuzz_{int(packed)}'
    fdp.name = fdp.package + '.proto'
    for m in fdp.message_type:
        for f in m.field:
            if f.HasField('type_name'):
                f.type_name = f.type_name.replace(f'.{old}.',
                                                  f'.{fdp.package}.')
            if f.type in (_F.TYPE_FLOAT, _F.TYPE_DOUBLE, _F.TYPE_INT64):
                f.options.packed = packed
            if f.name in ('bottom', 'top') or (m.name == 'NetParameter'
                                               and f.name == 'name'):
                f.type = _F.TYPE_BYTES
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName(fdp.package + '.NetParameter'))


NET = {True: _messages(True), False: _messages(False)}

# ---------------------------------------------------------------- writing
EDGE_DIMS = [
    -1,
    -7,
    0,
    1,
    2,
    3,
    7,
    INT_MAX,
    INT_MAX + 1,
    1 << 62,
    (1 << 63) - 1,
    -(1 << 63),
    pow(7, -1, 1 << 64)  # 7 * 7 * this wraps to 7 in int64
]
blob_spec = st.fixed_dictionaries(
    dict(
        values=st.lists(
            st.floats(width=32, allow_nan=False), min_size=0, max_size=6),
        double=st.booleans(),
        both=st.booleans(),
        shape=st.sampled_from(['exact', 'legacy', 'none', 'edge']),
        edge=st.lists(st.sampled_from(EDGE_DIMS), max_size=4)))
layer_spec = st.fixed_dictionaries(
    dict(
        name=st.sampled_from(['conv1', 'cls_score', 'bn_é', 'x']),
        v1=st.booleans(),
        type=st.sampled_from([4, 14, 39, 7, -1]),
        blobs=st.lists(blob_spec, max_size=2)))
net_spec = st.tuples(st.booleans(), st.lists(layer_spec, max_size=3))


def _fill(blob, spec, mutate_dims):
    n = len(spec['values'])
    shape = spec['shape'] if mutate_dims else (
        'exact' if spec['shape'] == 'edge' else spec['shape'])
    if shape == 'legacy':
        blob.num, blob.channels, blob.height, blob.width = 1, 1, 1, n
    elif shape == 'exact':
        blob.shape.dim.extend([n])
    elif shape == 'edge':
        blob.shape.dim.extend(spec['edge'])
    (blob.double_data if spec['double'] else blob.data).extend(spec['values'])
    if mutate_dims and spec['both']:
        (blob.data if spec['double'] else blob.double_data).append(1.0)


def build(spec, mutate_dims=True):
    packed, layers = spec
    net = NET[packed](name=b'ResNet-101')
    for layer in layers:
        if layer['v1']:
            msg = net.layers.add(name=layer['name'], type=layer['type'])
        else:
            msg = net.layer.add(
                name=layer['name'], type=V1_TYPES.get(layer['type'], 'ReLU'))
            msg.bottom.append(b'data\xff')
        for blob in layer['blobs']:
            _fill(msg.blobs.add(), blob, mutate_dims)
    return net.SerializeToString()


# --------------------------------------------------------------- damaging
_NESTED = {
    ('net', 100): 'layer',
    ('net', 2): 'v1',
    ('layer', 7): 'blob',
    ('v1', 6): 'blob',
    ('blob', 7): 'shape'
}


def _varint(data, pos):
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def _encode(value):
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def field_index(data, start=0, end=None, kind='net', out=None):
    """``(key_pos, len_pos, len_end)`` of every field of the known
    messages (``len_pos`` None unless length-delimited)."""
    out = [] if out is None else out
    pos, end = start, len(data) if end is None else end
    while pos < end:  # stops (IndexError) where earlier damage begins
        key, at = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 2:
            length, body = _varint(data, at)
            out.append((pos, at, body))
            if (kind, field) in _NESTED and body + length <= end:
                field_index(data, body, body + length, _NESTED[kind, field],
                            out)
            pos = body + length
        elif wire in (0, 1, 5):
            out.append((pos, None, None))
            pos = _varint(data,
                          at)[1] if wire == 0 else at + (8 if wire == 1 else 4)
        else:
            break
    return out


mutation = st.tuples(
    st.sampled_from(['wire', 'length', 'truncate', 'byte']),
    st.integers(0, 1 << 16), st.integers(0, 7),
    st.sampled_from([-5, -1, 1, 3, 1 << 20, 1 << 40, (1 << 64) - 1]))


def damage(data, mutations):
    for op, where, wire, amount in mutations:
        fields = []
        try:
            field_index(data, out=fields)
        except IndexError:
            pass
        if not fields or not data:
            break
        key_pos, len_pos, len_end = fields[where % len(fields)]
        if op == 'wire':
            data = data[:key_pos] + bytes([data[key_pos] & ~7 | wire
                                           ]) + data[key_pos + 1:]
        elif op == 'length' and len_pos is not None:
            length = _varint(data, len_pos)[0]
            new = max(0, length + amount) if abs(amount) < 8 else amount
            data = data[:len_pos] + _encode(new) + data[len_end:]
        elif op == 'truncate':
            data = data[:where % len(data)]
        elif op == 'byte':
            pos = where % len(data)
            data = data[:pos] + bytes([amount & 0xFF]) + data[pos + 1:]
    return data


# ---------------------------------------------------------------- reading
def expected_layers(data):
    """What the reader must return for ``data``, from protobuf's parse;
    None where it must refuse the file."""
    try:
        net = NET[True].FromString(data)
    except message.DecodeError:
        return None
    out = {}
    for layer, v1 in [(m, False) for m in net.layer] + \
            [(m, True) for m in net.layers]:
        if not layer.blobs:
            continue
        if layer.name in out:
            return None  # twice with blobs
        blobs = [_expected_blob(b) for b in layer.blobs]
        if any(b is None for b in blobs):
            return None
        kind = V1_TYPES.get(layer.type, f'V1:{layer.type}') if v1 else \
            layer.type
        out[layer.name] = (kind, blobs)
    return out


def _expected_blob(blob):
    if len(blob.data) and len(blob.double_data):
        return None
    values = np.array(blob.double_data or blob.data,
                      np.float64 if len(blob.double_data) else np.float32)
    if any(blob.HasField(f) for f in ('num', 'channels', 'height', 'width')):
        dims = [blob.num, blob.channels, blob.height, blob.width]
    elif blob.HasField('shape'):
        dims = list(blob.shape.dim)
        if len(dims) > 32 or any(d > INT_MAX for d in dims):
            return None
    else:
        dims = [values.size]
    if min(
            dims, default=0) < 0 or int(np.prod(dims,
                                                dtype=object)) != values.size:
        return None
    return values.reshape(dims)


@contextmanager
def bounded(seconds=5):
    """Fail on a hang (interval timer) or a peak allocation above
    MEMORY_BOUND."""

    def hang(*_):
        raise AssertionError(f'no answer in {seconds} s')

    old = signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    tracemalloc.start()
    try:
        yield
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert peak < MEMORY_BOUND, f'allocated {peak} bytes'


def check_against_protobuf(path, data):
    path.write_bytes(data)
    want = expected_layers(data)
    try:
        with bounded():
            got = read_caffemodel(str(path))
    except CaffeModelError as e:
        msg = str(e)
        assert str(path) in msg and '\n' not in msg, msg
        return None
    assert want is not None, f'read a file protobuf / caffe refuse: {got}'
    assert set(got) == set(want)
    for name, (kind, blobs) in want.items():
        assert got[name].type == kind
        assert len(got[name].blobs) == len(blobs)
        for a, b in zip(got[name].blobs, blobs):
            assert (a.dtype, a.shape) == (b.dtype, b.shape)
            assert a.tobytes() == b.tobytes()
    return got


@pytest.fixture(scope='module')
def fuzz_path(tmp_path_factory):
    return tmp_path_factory.mktemp('caffe_fuzz') / 'fuzz.caffemodel'


@examples(150)
@given(spec=net_spec)
def test_valid_encodings_read_like_protobuf(fuzz_path, spec):
    """Packed or unpacked floats / doubles / dims, legacy or BlobShape
    shapes, V1 and current layers: read exactly as protobuf does."""
    data = build(spec, mutate_dims=False)
    names = [layer['name'] for layer in spec[1] if layer['blobs']]
    got = check_against_protobuf(fuzz_path, data)
    if len(set(names)) == len(names):  # else: refused, twice with blobs
        assert got is not None and set(got) == set(names)


@examples(300)
@given(spec=net_spec, mutations=st.lists(mutation, max_size=3))
def test_damaged_caffemodel_reads_like_protobuf_or_fails_cleanly(
        fuzz_path, spec, mutations):
    check_against_protobuf(fuzz_path, damage(build(spec), mutations))


def test_every_truncation_point(fuzz_path):
    """A file cut anywhere: a clean error, or (cut at a field boundary of
    the net) the layers before the cut."""
    spec = (False, [
        dict(
            name=f'l{i}',
            v1=i == 1,
            type=4,
            blobs=[
                dict(
                    values=[1.5, -2.0, 3.25],
                    double=i == 2,
                    both=False,
                    shape=shape,
                    edge=[]) for shape in ('exact', 'legacy')
            ]) for i in range(3)
    ])
    data = build(spec)
    outcomes = [
        check_against_protobuf(fuzz_path, data[:n])
        for n in range(1,
                       len(data) + 1)
    ]
    assert outcomes[-1] is not None and len(outcomes[-1]) == 3
    assert sum(o is None for o in outcomes) > len(data) // 2
