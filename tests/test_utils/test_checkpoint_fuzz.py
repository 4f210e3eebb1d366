# Copyright (c) mmext contributors. All rights reserved.
"""Property tests: a mutated checkpoint (zip or legacy format; byte flips,
truncation, zip record size edits, pickle opcode and integer changes) loads,
or fails with an mmext error in one line naming the file -- never a hang,
never another exception type, never more memory than the bound."""
import io
import pickletools
import resource
import signal
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmext.testing.pickles import write_zip_checkpoint
from mmext.utils import (CorruptCheckpointError, UnsafeCheckpointError,
                         safe_torch_load)
from mmext.utils.checkpoint_bounds import SLACK_BYTES

ERRORS = (UnsafeCheckpointError, CorruptCheckpointError)
EXPANSION = 4
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow])


def _state():
    w = torch.arange(24.).reshape(4, 6)
    return {
        'state_dict': {
            'conv.weight': w,
            'conv.weight_t': w.t(),  # a strided view of the same storage
            'rows': w[1:3],
            'bn.num_batches_tracked': torch.tensor(3),
            'half': torch.ones(5, dtype=torch.float16),
        },
        'meta': {
            'epoch': 3,
            'lr': np.float64(0.1),
            'hist': np.arange(4, dtype=np.int32),
            'name': 'fuzz',
        },
    }


def _saved(zip_format):
    buffer = io.BytesIO()
    torch.save(_state(), buffer, _use_new_zipfile_serialization=zip_format)
    return buffer.getvalue()


ZIP, LEGACY = _saved(True), _saved(False)
FORMATS = {'zip': ZIP, 'legacy': LEGACY}


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp('fuzz')


@pytest.fixture(scope='module', autouse=True)
def rss_growth():
    """The whole module must not raise the process's peak RSS by much."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < 256 * 1024, f'peak RSS grew by {grown} KiB'


class Hang(BaseException):
    """Not an Exception: the loader's catch-all must not swallow it."""


def _materialised(obj):
    seen, total, stack = set(), 0, [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, torch.Tensor):
            total += item.numel() * item.element_size()
        elif isinstance(item, np.ndarray):
            total += item.nbytes
        elif isinstance(item, (bytes, bytearray, str)):
            total += len(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set)):
            stack.extend(item)
    return total


def _check(folder, data, name='mutant.pth'):
    """Load ``data`` from a file; assert the outcome is allowed."""
    path = folder / name
    path.write_bytes(data)

    def hang(*_):
        raise Hang(f'{path} hangs the loader')

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(10)
    try:
        obj = safe_torch_load(str(path), max_expansion=EXPANSION)
    except ERRORS as e:
        msg = str(e)
        assert len(msg.splitlines()) == 1 and str(path) in msg, msg
        return None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert _materialised(obj) <= EXPANSION * len(data) + SLACK_BYTES
    return obj


def test_unmutated_files_load_exactly(folder):
    for data in FORMATS.values():
        out = _check(folder, data)
        for key, value in _state()['state_dict'].items():
            assert torch.equal(out['state_dict'][key], value), key
        assert out['meta']['lr'] == 0.1


@FUZZ
@given(
    fmt=st.sampled_from(sorted(FORMATS)),
    flips=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
        min_size=1,
        max_size=8))
def test_byte_flips(folder, fmt, flips):
    data = bytearray(FORMATS[fmt])
    for where, value in flips:
        data[int(where * len(data))] = value
    _check(folder, bytes(data))


@FUZZ
@given(fmt=st.sampled_from(sorted(FORMATS)), cut=st.floats(0, 1))
def test_truncation(folder, fmt, cut):
    data = FORMATS[fmt]
    _check(folder, data[:int(cut * len(data))] or b'\x80')


def _central_entries(data):
    """Offsets of the zip's central directory headers."""
    start = data.find(b'PK\x01\x02')
    while start >= 0:
        yield start
        start = data.find(b'PK\x01\x02', start + 4)


@FUZZ
@given(
    record=st.integers(0, 50),
    size=st.one_of(st.integers(0, 4096), st.integers(0, 2**32 - 1)),
    field=st.sampled_from(['central', 'local', 'both']))
def test_record_size_edits(folder, record, size, field):
    data = bytearray(ZIP)
    entries = list(_central_entries(bytes(data)))
    entry = entries[record % len(entries)]
    packed = size.to_bytes(4, 'little')
    if field in ('central', 'both'):
        data[entry + 20:entry + 28] = packed * 2
    if field in ('local', 'both'):
        local = int.from_bytes(data[entry + 42:entry + 46], 'little')
        data[local + 18:local + 26] = packed * 2
    _check(folder, bytes(data))


def _pickle_of_zip():
    with zipfile.ZipFile(io.BytesIO(ZIP)) as z:
        name = next(n for n in z.namelist() if n.endswith('/data.pkl'))
        return z.read(name)


def _legacy_main_pickle():
    """(start, end) of the legacy file's fourth pickle (the object)."""
    stream = io.BytesIO(LEGACY)
    for _ in range(3):
        for _ in pickletools.genops(stream):
            pass
    start = stream.tell()
    for _ in pickletools.genops(stream):
        pass
    return start, stream.tell()


PKL = _pickle_of_zip()
LEGACY_SPAN = _legacy_main_pickle()
OPCODES = [op.code.encode('latin1') for op in pickletools.opcodes]
INT_WIDTH = {'K': 1, 'M': 2, 'J': 4}  # BININT1, BININT2, BININT


def _mutate_pickle(pkl, choice, kind, value):
    ops = [(op.code, pos) for op, _, pos in pickletools.genops(pkl)]
    out = bytearray(pkl)
    if kind == 'opcode':
        _, pos = ops[choice % len(ops)]
        out[pos:pos + 1] = OPCODES[value % len(OPCODES)]
        return bytes(out)
    ints = [(code, pos) for code, pos in ops
            if code in INT_WIDTH or code == '\x8a']
    code, pos = ints[choice % len(ints)]
    if code == '\x8a':  # LONG1: keep its width
        width, pos = out[pos + 1], pos + 1
    else:
        width = INT_WIDTH[code]
    out[pos + 1:pos + 1 + width] = (value % 2**(8 * width)).to_bytes(
        width, 'little')
    return bytes(out)


@FUZZ
@given(
    fmt=st.sampled_from(sorted(FORMATS)),
    choice=st.integers(0, 10**6),
    kind=st.sampled_from(['opcode', 'int']),
    value=st.one_of(
        st.integers(0, 300), st.integers(0, 2**64), st.just(2**31 - 1)))
def test_pickle_opcode_and_integer_changes(folder, fmt, choice, kind, value):
    if fmt == 'zip':  # re-zipped: the change reaches the unpickler
        mutant = _mutate_pickle(PKL, choice, kind, value)
        path = write_zip_checkpoint(folder / 'src.pth', mutant, template=ZIP)
        data = path.read_bytes()
    else:  # same length, in place
        start, end = LEGACY_SPAN
        mutant = _mutate_pickle(LEGACY[start:end], choice, kind, value)
        data = LEGACY[:start] + mutant + LEGACY[end:]
    _check(folder, data)
