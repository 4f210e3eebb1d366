# Copyright (c) mmext contributors. All rights reserved.
"""How much memory a checkpoint may make its loader allocate.

torch's ``weights_only`` unpickler stops code execution, not memory bombs:
its default allowlist keeps ``builtins.bytearray`` (``bytearray(2**31)`` is a
683-byte pickle), ``torch.Tensor`` and the legacy tensor / storage classes
(``torch.Tensor(n)`` hands out ``n`` uninitialised floats as a weight),
``_rebuild_device_tensor_from_cpu_tensor`` (materialises a zero-stride view
of one float as gigabytes of float64), and it inflates deflated zip records
of any ratio. Nothing relates what a file may allocate to its size, and
torch looks its own allowlist up *before* the user's, so ``safe_globals``
cannot replace these entries.

:func:`bounded_unpickling` therefore swaps, for the duration of one load,
the dangerous entries of torch's (cached) allowlist for stand-ins that
charge every allocation to a :class:`~mmext.utils.safe_pickle.Budget` and
refuse the constructors a ``torch.save`` file never calls with a size; it
also wraps the ``persistent_load`` torch installs, so each storage's declared
size is checked against its zip record (or, in the legacy format, against
the file) before torch allocates it. :func:`inspect_zip` refuses compressed
or overlapping zip records; :func:`inspect_safetensors` checks a
safetensors header; :func:`check_tensors` refuses views that would
materialise more than their storage and charges every tensor's dense size.

The bound is ``MMEXT_CHECKPOINT_MAX_EXPANSION`` (default 4) times the file
size, plus 1 MiB: a real checkpoint needs about 2x (its storages, and its
tensors once each).
"""
import contextlib
import functools
import json
import math
import os
import struct
import threading
import zipfile
from collections import Counter, OrderedDict

import _codecs
import torch
from torch import _weights_only_unpickler as _wou

from .safe_pickle import Budget, CheckpointRefused, charge, refuse

__all__ = [
    'ENV_MAX_EXPANSION', 'DEFAULT_MAX_EXPANSION', 'SLACK_BYTES',
    'checkpoint_budget', 'inspect_zip', 'inspect_safetensors',
    'bounded_unpickling', 'check_tensors', 'CheckpointRefused'
]

ENV_MAX_EXPANSION = 'MMEXT_CHECKPOINT_MAX_EXPANSION'
DEFAULT_MAX_EXPANSION = 4.0
SLACK_BYTES = 1 << 20
_SAFETENSORS_MAX_HEADER = 100_000_000  # safetensors' own limit


class ArchiveError(Exception):
    """The archive layout itself is wrong; ``bound`` says if it is a bomb."""

    def __init__(self, reason, bound=False):
        super().__init__(reason)
        self.bound = bound


def max_expansion(value=None):
    """The expansion factor: ``value``, else the env var, else 4."""
    if value is None:
        value = os.environ.get(ENV_MAX_EXPANSION, DEFAULT_MAX_EXPANSION)
    try:
        factor = float(value)
    except (TypeError, ValueError):
        factor = float('nan')
    if not factor > 0 or math.isinf(factor):
        raise ValueError(f'{ENV_MAX_EXPANSION}={value!r} is not a positive '
                         'number: use a factor such as 4')
    return factor


def checkpoint_budget(file_size, expansion=None):
    """The :class:`Budget` of a ``file_size``-byte checkpoint."""
    factor = max_expansion(expansion)
    budget = Budget(int(factor * file_size) + SLACK_BYTES)
    budget.factor, budget.file_size = factor, file_size
    return budget


# --------------------------------------------------------------------------
# the container: zip records, legacy storages, safetensors header


def inspect_zip(fh, file_size):
    """Record sizes of a torch zip archive, keyed as torch looks them up.

    Raises:
        ArchiveError: Unreadable central directory, a compressed record
            (torch.save never compresses; deflate reaches 1000:1), or
            records that declare more bytes than the file holds (overlapping
            entries share their bytes).
    """
    fh.seek(0)
    try:
        infos = zipfile.ZipFile(fh).infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise ArchiveError(f'its zip directory is unreadable ({e})') from None
    finally:
        fh.seek(0)
    if not infos:
        raise ArchiveError('its zip archive holds no records')
    total = 0
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED:
            raise ArchiveError(
                f'record {info.filename} is compressed (zip method '
                f'{info.compress_type}, {info.file_size} bytes unpacked); '
                'torch.save never compresses',
                bound=True)
        total += info.file_size
    if total > file_size:
        raise ArchiveError(
            f'its records declare {total} bytes in a {file_size}-byte file '
            '(overlapping or lying zip entries)',
            bound=True)
    # torch prefixes every lookup by the first record's top-level folder
    prefix = infos[0].filename.split('/', 1)[0] + '/'
    return {
        i.filename[len(prefix):]: i.file_size
        for i in infos if i.filename.startswith(prefix)
    }


_SAFETENSORS_ITEMSIZE = {
    dtype: size
    for size, dtypes in ((1, 'BOOL U8 I8 F8_E5M2 F8_E4M3'),
                         (2, 'I16 U16 F16 BF16'), (4, 'I32 U32 F32'),
                         (8, 'I64 U64 F64 C64')) for dtype in dtypes.split()
}


def inspect_safetensors(fh, file_size, budget):
    """Check a safetensors header before safetensors allocates anything:
    its size, and that every tensor's shape and dtype match its byte range
    inside the file. Charges the header and the tensors to ``budget``."""
    fh.seek(0)
    size = struct.unpack('<Q', fh.read(8))[0]
    if size > min(_SAFETENSORS_MAX_HEADER, file_size - 8):
        raise ArchiveError(f'its header declares {size} bytes in a '
                           f'{file_size}-byte file')
    budget.charge(8 * size, 'its safetensors header')
    try:
        header = json.loads(fh.read(size))
    except (UnicodeDecodeError, ValueError) as e:
        raise ArchiveError(f'its header is not JSON ({e})') from None
    if not isinstance(header, dict):
        raise ArchiveError('its header is not a JSON object')
    data_size = file_size - 8 - size
    for name, info in header.items():
        if name == '__metadata__':
            continue
        try:
            itemsize = _SAFETENSORS_ITEMSIZE.get(info['dtype'], 1)
            shape, (begin, end) = info['shape'], info['data_offsets']
            numel = math.prod(int(n) for n in shape)
            valid = (0 <= begin <= end <= data_size
                     and end - begin == numel * itemsize
                     and all(type(n) is int and n >= 0 for n in shape))
        except (KeyError, TypeError, ValueError):
            valid = False
        if not valid:
            raise ArchiveError(f'its header entry {name!r:.60} does not '
                               'match its byte range in the file')
        budget.charge(end - begin, f'tensor {name!r:.60}')


# --------------------------------------------------------------------------
# stand-ins for torch's allowlisted constructors


def _tensor_class(real):
    """A tensor / storage class: no arguments only (``torch.Tensor(n)``
    allocates n uninitialised elements)."""

    def __new__(cls, *args, **kwargs):
        if args or kwargs:
            refuse(f'{real.__module__}.{real.__name__} called with '
                   f'{args!r:.40}: it allocates uninitialised memory; '
                   'torch.save rebuilds tensors from their stored bytes')
        return real()

    return type(real.__name__, (), {'__new__': __new__, '_real': real})


def _copying(real, per_item):
    """A constructor that copies its argument: charged per item."""

    @functools.wraps(real)
    def stand_in(*args):
        for arg in args:
            try:
                count = len(arg)
            except TypeError:
                refuse(f'{real.__name__} of {type(arg).__name__}')
            charge(count * per_item, f'a {real.__name__} of {count} items')
        return real(*args)

    return stand_in


def _bytearray(source=b'', encoding=None, errors=None):
    if not isinstance(source, (bytes, bytearray, str)):
        refuse(f'bytearray({type(source).__name__}): a bytearray built from '
               'a number or an iterable; torch.save pickles its bytes')
    charge(len(source) * (4 if isinstance(source, str) else 1), 'a bytearray')
    args = (source, ) if encoding is None else (source, encoding)
    return bytearray(*args) if errors is None else bytearray(*args, errors)


_TEXT_CODECS = ('latin1', 'latin-1', 'utf-8', 'utf8', 'ascii')


def _encode(obj, encoding='utf-8', errors='strict'):
    # how protocol-2 pickles store bytes: _codecs.encode(text, 'latin1')
    if (not isinstance(obj, str) or encoding not in _TEXT_CODECS
            or not isinstance(errors, str)):
        refuse(f'_codecs.encode({type(obj).__name__}, {encoding!r:.20}): '
               'pickles encode text as latin1 only')
    charge(len(obj) * (4 if encoding.startswith('utf') else 1), 'bytes')
    return _codecs.encode(obj, encoding, errors)


def _from_cpu_tensor(data, dtype, device, requires_grad):
    if not isinstance(data, torch.Tensor) or not isinstance(
            dtype, torch.dtype):
        refuse('_rebuild_device_tensor_from_cpu_tensor of '
               f'{type(data).__name__}')
    nbytes = data.numel() * torch._utils._element_size(dtype)
    charge(nbytes, f'a {tuple(data.shape)} {dtype} copy of a tensor')
    return torch._utils._rebuild_device_tensor_from_cpu_tensor(
        data, dtype, device, requires_grad)


def _from_type_v2(func, new_type, args, state):
    new_type = getattr(new_type, '_real', new_type)
    return torch._tensor._rebuild_from_type_v2(func, new_type, args, state)


def _refused(what):

    def stand_in(*args):
        refuse(f'{what}: mmext loads dense tensors with data only')

    return stand_in


@functools.lru_cache(maxsize=1)
def _stand_ins():
    """``{allowlist name: stand-in}`` for torch's default allowlist."""
    u = torch._utils
    by_object = {
        bytearray: _bytearray,
        _codecs.encode: _encode,
        set: _copying(set, 64),
        Counter: _copying(Counter, 64),
        OrderedDict: _copying(OrderedDict, 64),
        torch.Size: _copying(torch.Size, 8),
        u._rebuild_device_tensor_from_cpu_tensor: _from_cpu_tensor,
        torch._tensor._rebuild_from_type_v2: _from_type_v2,
        u._rebuild_qtensor: _refused('a quantized tensor'),
        u._rebuild_sparse_tensor: _refused('a sparse tensor'),
        u._rebuild_nested_tensor: _refused('a nested tensor'),
        u._rebuild_wrapper_subclass: _refused('a tensor subclass wrapper'),
        u._rebuild_meta_tensor_no_storage: _refused('a meta tensor (no data)'),
        u._rebuild_device_tensor_from_numpy: _refused('a tensor from numpy'),
    }
    for cls in (torch.Tensor, *torch._tensor_classes, torch.UntypedStorage,
                torch.TypedStorage):
        by_object[cls] = _tensor_class(cls)
    return {
        name: by_object[obj]
        for name, obj in _wou._get_allowed_globals().items()
        if _hashable(obj) and obj in by_object
    }


def _hashable(obj):
    try:
        hash(obj)
    except TypeError:
        return False
    return True


# --------------------------------------------------------------------------
# the storage check, in the persistent_load torch installs


class _Storages:
    """Checks each storage a pickle asks for, before torch allocates it."""

    def __init__(self, records, file_size):
        self.records = records  # None: legacy format, data after the pickle
        self.file_size = file_size
        self.seen = set()
        self.legacy_bytes = 0

    def check(self, saved_id):
        if not (type(saved_id) is tuple and len(saved_id) in (5, 6)):
            return saved_id  # torch refuses what is not a storage id
        typename, storage_type, key, location, numel = saved_id[:5]
        storage_type = getattr(storage_type, '_real', storage_type)
        if storage_type is torch.UntypedStorage:
            dtype = torch.uint8
        else:
            dtype = getattr(storage_type, 'dtype', None)
        if (type(numel) is not int or numel < 0
                or not isinstance(dtype, torch.dtype)
                or not isinstance(key, (str, int))):
            refuse(f'storage id {saved_id!r:.80}')
        if key in self.seen:
            return (typename, storage_type) + saved_id[2:]
        self.seen.add(key)
        nbytes = numel * torch._utils._element_size(dtype)
        if self.records is not None:
            held = self.records.get(f'data/{key}')
            if held is not None and nbytes > held:
                refuse(f'storage data/{key} declares {nbytes} bytes but '
                       f'its record holds {held}')
        else:
            self.legacy_bytes += nbytes
            if self.legacy_bytes > self.file_size:
                refuse(f'its storages declare {self.legacy_bytes} bytes in '
                       f'a {self.file_size}-byte file')
        charge(nbytes, f'storage {key}')
        return (typename, storage_type) + saved_id[2:]


_STORAGES = threading.local()


class _BoundedUnpickler(_wou.Unpickler):
    """torch's weights-only unpickler whose ``persistent_load`` (set by
    torch per load) first passes every storage id through the check."""

    @property
    def persistent_load(self):
        load = getattr(self, '_torch_persistent_load', None)
        if load is None:
            return super().persistent_load
        storages = getattr(_STORAGES, 'current', None)
        if storages is None:
            return load
        return lambda saved_id: load(storages.check(saved_id))

    @persistent_load.setter
    def persistent_load(self, load):
        self._torch_persistent_load = load


_LOCK = threading.RLock()


@contextlib.contextmanager
def bounded_unpickling(budget, records, file_size):
    """Within the block, torch's weights-only loads charge ``budget``.

    Args:
        budget (Budget): Charged for every allocation.
        records (dict | None): :func:`inspect_zip`'s record sizes, or None
            for a legacy (pre-1.6) file.
        file_size (int): The checkpoint's size in bytes.
    """
    allowed = _wou._get_allowed_globals()
    with _LOCK, budget.active():
        saved, saved_unpickler = dict(allowed), _wou.Unpickler
        _STORAGES.current = _Storages(records, file_size)
        allowed.update(_stand_ins())
        _wou.Unpickler = _BoundedUnpickler
        try:
            yield
        finally:
            _wou.Unpickler = saved_unpickler
            allowed.clear()
            allowed.update(saved)
            _STORAGES.current = None


# --------------------------------------------------------------------------
# after unpickling: views


def check_tensors(obj, budget):
    """Refuse views whose strides would materialise more than their
    storage; charge every distinct tensor's dense size to ``budget``."""
    seen = set()
    stack = [(obj, '')]
    while stack:
        item, path = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, torch.Tensor):
            _check_tensor(item, path or 'the checkpoint', budget)
        elif isinstance(item, dict):
            stack.extend((v, f'{path}.{k}' if path else f'{k}')
                         for k, v in item.items())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend((v, f'{path}[{i}]') for i, v in enumerate(item))


def _check_tensor(t, path, budget):
    path = f'{path:.80}'
    if t.layout != torch.strided or t.device.type == 'meta':
        refuse(f'tensor {path} is {t.layout} on {t.device}: mmext loads '
               'dense tensors with data only')
    dense = t.numel() * t.element_size()
    held = t.untyped_storage().nbytes()
    if dense > held:
        refuse(f'tensor {path} of shape {tuple(t.shape)} and stride '
               f'{t.stride()} would expand its {held}-byte storage to '
               f'{dense} bytes')
    budget.charge(dense, f'tensor {path}')
