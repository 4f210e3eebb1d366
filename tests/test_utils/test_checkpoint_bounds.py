# Copyright (c) mmext contributors. All rights reserved.
"""Memory bounds of the safe loader: small files that would allocate far
more than their size are refused before the allocation, with one line
naming the file; real checkpoints load; the bound is documented and can be
raised."""
import functools
import http.server
import io
import os
import subprocess
import sys
import threading
import zipfile

import numpy as np
import pytest
import torch

from mmext.testing.pickles import (MEMORY_BOMBS, Asm, write_legacy_checkpoint,
                                   write_memory_bomb, write_zip_checkpoint)
from mmext.utils import (CheckpointBoundError, CorruptCheckpointError,
                         UnsafeCheckpointError, safe_torch_load)
from mmext.utils.checkpoint import load_url_safely
from tests.conftest import ROOT

MiB = 1 << 20
EXPECTED = {
    'bytearray': (UnsafeCheckpointError, 'bytearray(int)'),
    'uninitialised tensor': (UnsafeCheckpointError, 'uninitialised memory'),
    'zero-stride view': (CheckpointBoundError, 'float64 copy'),
    'deflated record': (CheckpointBoundError, 'is compressed'),
}


def _one_line(error, path):
    msg = str(error)
    assert len(msg.splitlines()) == 1 and str(path) in msg, msg
    return msg


@pytest.mark.parametrize('kind', list(MEMORY_BOMBS))
def test_memory_bombs_are_refused(kind, tmp_path):
    path = write_memory_bomb(tmp_path / 'bomb.pth', kind, 8 * MiB)
    assert path.stat().st_size < 64 * 1024
    error, cause = EXPECTED[kind]
    with pytest.raises(error) as e:
        safe_torch_load(str(path))
    assert cause in _one_line(e.value, path)


@pytest.mark.parametrize('kind', list(MEMORY_BOMBS))
def test_controls_bombs_allocate_under_plain_weights_only(kind, tmp_path):
    """torch's own weights-only load builds the 8 MiB: the bombs are live."""
    path = write_memory_bomb(tmp_path / 'bomb.pth', kind, 8 * MiB)
    w = torch.load(str(path), weights_only=True)['state_dict']['w']
    size = len(w) if isinstance(w, bytearray) else w.numel() * w.element_size()
    assert size == 8 * MiB


def test_bound_is_a_factor_of_the_file_size(tmp_path, monkeypatch):
    path = write_memory_bomb(tmp_path / 'zs.pth', 'zero-stride view', 4 * MiB)
    size = path.stat().st_size
    with pytest.raises(CheckpointBoundError, match=f'4 x its {size}-byte'):
        safe_torch_load(str(path))
    factor = 8 * MiB // size
    out = safe_torch_load(str(path), max_expansion=factor)
    assert out['state_dict']['w'].shape == (MiB // 2, )
    monkeypatch.setenv('MMEXT_CHECKPOINT_MAX_EXPANSION', str(factor))
    assert safe_torch_load(str(path))['state_dict']['w'].dtype == torch.float64
    monkeypatch.setenv('MMEXT_CHECKPOINT_MAX_EXPANSION', 'lots')
    with pytest.raises(ValueError, match='MMEXT_CHECKPOINT_MAX_EXPANSION'):
        safe_torch_load(str(path))


def test_real_checkpoints_fit_the_default_bound(tmp_path):
    """Tied weights, views and numpy metadata: well within 4x."""
    w = torch.randn(256, 256)
    state = {
        'state_dict': {
            'w': w,
            'tied': w,
            'rows': w[:128],
            'b': torch.arange(10)
        },
        'meta': {
            'arr': np.ones(1000),
            'lr': np.float64(0.1)
        }
    }
    for zip_format in (True, False):
        path = tmp_path / f'real_{zip_format}.pth'
        torch.save(state, path, _use_new_zipfile_serialization=zip_format)
        out = safe_torch_load(str(path), max_expansion=3)
        assert torch.equal(out['state_dict']['rows'], w[:128])
        assert out['state_dict']['tied'] is out['state_dict']['w']


def test_expanded_view_is_refused(tmp_path):
    """torch.save of ``x.expand(n)`` stores one element and stride 0."""
    path = tmp_path / 'expanded.pth'
    torch.save({'w': torch.zeros(1).expand(10**6)}, path)
    with pytest.raises(UnsafeCheckpointError, match='would expand its 4-byte'):
        safe_torch_load(str(path))


def _storage_tensor(numel, storage='FloatStorage', legacy=False):
    a = Asm().glob('torch._utils', '_rebuild_tensor_v2').mark()
    a.mark().str('storage').glob('torch', storage).str('0').str('cpu')
    a.long(numel)
    if legacy:
        a.none()
    a.tuple().persid().int(0).long(numel).tuple1().int(1).tuple1().false()
    a.glob('collections', 'OrderedDict').empty_tuple().reduce()
    return a.tuple().reduce()


def test_storage_larger_than_its_record_is_refused(tmp_path):
    path = write_zip_checkpoint(tmp_path / 'lying.pth',
                                _storage_tensor(2**28).bytes())
    with pytest.raises(UnsafeCheckpointError) as e:
        safe_torch_load(str(path))
    assert 'declares 1073741824 bytes but its record holds 8' in _one_line(
        e.value, path)


def test_legacy_storages_larger_than_the_file_are_refused(tmp_path):
    path = write_legacy_checkpoint(tmp_path / 'legacy.pth',
                                   _storage_tensor(2**28, legacy=True).bytes())
    with pytest.raises(UnsafeCheckpointError) as e:
        safe_torch_load(str(path))
    assert 'storages declare 1073741824 bytes' in _one_line(e.value, path)


def _set_central_size(data, name, size):
    """Edit the uncompressed size of ``name`` in the zip's central
    directory (what a crafted archive does to claim overlapping bytes)."""
    start = data.index(b'PK\x01\x02')
    while True:
        n = int.from_bytes(data[start + 28:start + 30], 'little')
        if data[start + 46:start + 46 + n].decode() == name:
            break
        start = data.index(b'PK\x01\x02', start + 4)
    data = bytearray(data)
    data[start + 20:start + 28] = size.to_bytes(4, 'little') * 2
    return bytes(data)


def test_zip_records_declaring_more_than_the_file_are_refused(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'w': torch.zeros(4)}, good)
    name = next(
        n for n in zipfile.ZipFile(good).namelist() if n.endswith('/data/0'))
    path = tmp_path / 'sizes.pth'
    path.write_bytes(_set_central_size(good.read_bytes(), name, 2**31))
    with pytest.raises(CheckpointBoundError) as e:
        safe_torch_load(str(path))
    assert 'records declare' in _one_line(e.value, path)


def test_fifo_and_devices_do_not_hang(tmp_path):
    fifo = tmp_path / 'ckpt.pth'
    os.mkfifo(fifo)
    result = {}

    def load(path):
        try:
            safe_torch_load(str(path))
        except CorruptCheckpointError as e:
            result[path] = str(e)

    for path in (fifo, '/dev/zero'):
        worker = threading.Thread(target=load, args=(path, ), daemon=True)
        worker.start()
        worker.join(20)
        assert not worker.is_alive(), f'{path} hangs the loader'
    assert 'is a FIFO, not a regular file' in result[fifo]
    assert 'character device' in result['/dev/zero']


def test_safetensors_header_is_checked(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / 'x.safetensors'
    save_file({'w': torch.zeros(4)}, path)
    data = path.read_bytes()
    n = int.from_bytes(data[:8], 'little')
    header = data[8:8 + n].replace(b'[4]', b'[9]')
    (tmp_path / 'bad.safetensors').write_bytes(data[:8] + header +
                                               data[8 + n:])
    with pytest.raises(CorruptCheckpointError, match='does not match'):
        safe_torch_load(str(tmp_path / 'bad.safetensors'))
    huge = (2**40).to_bytes(8, 'little') + b'{' + bytes(40)
    (tmp_path / 'huge.safetensors').write_bytes(huge)
    with pytest.raises((CorruptCheckpointError, UnsafeCheckpointError)):
        safe_torch_load(str(tmp_path / 'huge.safetensors'))
    assert torch.equal(safe_torch_load(str(path))['w'], torch.zeros(4))


def test_streams_get_the_same_bounds(tmp_path):
    path = write_memory_bomb(tmp_path / 'zs.pth', 'zero-stride view', 8 * MiB)
    buffer = io.BytesIO(path.read_bytes())
    with pytest.raises(CheckpointBoundError, match='<checkpoint stream>'):
        safe_torch_load(buffer)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / 'www'
    root.mkdir()
    torch.save({'w': torch.zeros(2 * MiB // 4)}, root / 'big.pth')
    write_memory_bomb(root / 'bomb.pth', 'zero-stride view', 8 * MiB)
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()
    httpd.server_close()


def test_downloads_stop_at_the_limit(server, tmp_path, monkeypatch):
    cache = tmp_path / 'cache'
    with pytest.raises(CheckpointBoundError, match='download limit'):
        load_url_safely(
            f'{server}/big.pth',
            model_dir=str(cache),
            progress=False,
            max_download=MiB)
    assert not list(cache.iterdir())  # no partial file left behind
    monkeypatch.setenv('MMEXT_CHECKPOINT_MAX_DOWNLOAD', '1M')
    with pytest.raises(CheckpointBoundError, match='download limit'):
        load_url_safely(
            f'{server}/big.pth', model_dir=str(cache), progress=False)
    monkeypatch.setenv('MMEXT_CHECKPOINT_MAX_DOWNLOAD', '3M')
    out = load_url_safely(
        f'{server}/big.pth', model_dir=str(cache), progress=False)
    assert out['w'].numel() == 2 * MiB // 4
    with pytest.raises(CheckpointBoundError, match='float64 copy'):
        load_url_safely(
            f'{server}/bomb.pth', model_dir=str(cache), progress=False)


PEAK = '''
import sys, mmext
from mmext.utils import safe_torch_load
def hwm():
    return next(int(line.split()[1]) for line in open('/proc/self/status')
                if line.startswith('VmHWM'))
base = hwm()
for path in sys.argv[1:]:
    try:
        safe_torch_load(path)
    except Exception as e:
        print(type(e).__name__)
print('GROWTH_KB', hwm() - base)
'''


@pytest.mark.skipif(
    not os.path.exists('/proc/self/status'), reason='needs /proc')
def test_two_gib_bombs_stay_within_the_bound(tmp_path):
    """The bombs at full size, in a fresh process: peak RSS barely moves
    (without the bounds each costs about 2 GiB, README)."""
    paths = [
        write_memory_bomb(tmp_path / f'{i}.pth', kind, 2**31)
        for i, kind in enumerate(MEMORY_BOMBS) if kind != 'deflated record'
    ]
    paths.append(
        write_memory_bomb(tmp_path / 'df.pth', 'deflated record', 2**28))
    proc = subprocess.run([sys.executable, '-c', PEAK, *map(str, paths)],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    lines = proc.stdout.split()
    assert lines.count('UnsafeCheckpointError') == 2, proc.stdout
    assert lines.count('CheckpointBoundError') == 2, proc.stdout
    assert int(lines[-1]) < 64 * 1024, proc.stdout  # KiB
