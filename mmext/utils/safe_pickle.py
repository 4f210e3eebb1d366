# Copyright (c) mmext contributors. All rights reserved.
"""The globals mmext lets a checkpoint's pickle name, as inert records.

torch's ``weights_only`` unpickler calls every allowlisted global it meets
(REDUCE, NEWOBJ) and applies BUILD states to allowlisted classes through
their ``__setstate__`` or ``__dict__``. Allowlisting the real objects an
mmengine checkpoint names (``builtins.getattr``, ``HistoryBuffer``,
``numpy.dtype``, ``numpy._core.multiarray._reconstruct`` / ``scalar``) is
enough to run code: ``getattr`` reaches ``builtins.eval`` and a BUILD puts it
into a ``HistoryBuffer``'s ``__dict__`` as ``__setstate__``. torch lacks a way
to allow *a use* of a global rather than the global itself, so each name is
bound here to a restricted stand-in (torch accepts ``(object, "module.name")``
pairs):

========================================  =================================
pickle global                             stand-in accepts exactly
========================================  =================================
``builtins.getattr``                      ``HistoryBuffer``.min / max /
                                          current / mean (how mmengine
                                          pickles its statistics methods)
``mmengine...HistoryBuffer``              a record; BUILD state must be a
                                          dict of ``max_length``,
                                          ``_log_history``,
                                          ``_count_history``,
                                          ``statistics_methods``
``numpy.dtype``                           bool / int / uint / float /
                                          complex specs; BUILD state must be
                                          a plain dtype's state (no fields,
                                          subarray, names or flags)
``numpy._core.multiarray._reconstruct``   ``(ndarray, (0,), b'b')``; BUILD
                                          state must describe a numeric
                                          array whose bytes match its shape
``numpy._core.multiarray.scalar``         a numeric dtype and its bytes
``numpy.ndarray``                         a marker (only as the first
                                          argument of ``_reconstruct``)
========================================  =================================

(``numpy.core.multiarray`` names of numpy 1.x files map to the same stand-ins.)
Records have ``__slots__`` (no ``__dict__`` to inject into) and refuse any
other state. :func:`materialize` then builds the real numpy arrays, dtypes and
``HistoryBuffer`` objects from the validated plain data, after unpickling has
finished. Object arrays, structured dtypes, subclasses and dunder keys are
refused with a message starting ``mmext refused:``.

Every allocation a stand-in makes is charged to the :class:`Budget` of the
load in progress (:func:`charge`); :mod:`mmext.utils.checkpoint_bounds` sets
that budget and puts stand-ins in place of torch's own allowlisted
constructors.
"""
import contextlib
import contextvars
import math

import numpy as np
from mmengine.logging.history_buffer import HistoryBuffer

__all__ = [
    'SAFE_GLOBALS', 'REFUSED', 'materialize', 'Budget', 'BoundExceeded',
    'charge', 'refuse'
]

#: every refusal raised during unpickling starts with this text
REFUSED = 'mmext refused:'

_STATISTICS = ('min', 'max', 'current', 'mean')
# numpy dtype specs real checkpoints use: bool, (u)ints, floats, complex
_DTYPE_KINDS = {'b', 'i', 'u', 'f', 'c'}
_MAX_NDIM = 32


class CheckpointRefused(Exception):
    """Raised inside the unpickler; safe_torch_load turns it into a message."""

    def __init__(self, reason):
        super().__init__(f'{REFUSED} {reason}')


def _refuse(reason):
    # torch's load() re-wraps pickle.UnpicklingError only; any exception
    # type works because safe_torch_load looks for the REFUSED text.
    raise CheckpointRefused(reason)


refuse = _refuse


class BoundExceeded(Exception):
    """A load would allocate more than its :class:`Budget` allows."""

    def __init__(self, what, nbytes, used, limit):
        super().__init__(f'{what} ({nbytes} bytes) takes the load to {used} '
                         f'bytes, above its bound of {limit}')
        self.what, self.nbytes, self.limit = what, nbytes, limit


class Budget:
    """Bytes one checkpoint load may allocate; charged before allocating.

    Args:
        limit (int | None): The bound in bytes; None counts without a bound.
    """

    def __init__(self, limit):
        self.limit = limit
        self.used = 0

    def charge(self, nbytes, what):
        self.used += nbytes
        if self.limit is not None and self.used > self.limit:
            raise BoundExceeded(what, nbytes, self.used, self.limit)

    @contextlib.contextmanager
    def active(self):
        """Make this the budget :func:`charge` draws on (per thread/task)."""
        token = _BUDGET.set(self)
        try:
            yield self
        finally:
            _BUDGET.reset(token)


_BUDGET = contextvars.ContextVar('mmext_checkpoint_budget', default=None)


def charge(nbytes, what):
    """Charge ``nbytes`` to the active budget (no-op outside a load)."""
    budget = _BUDGET.get()
    if budget is not None:
        budget.charge(nbytes, what)


def _describe(obj):
    return type(obj).__name__


class _Record:
    """Base of the inert objects the unpickler may create and BUILD."""
    __slots__ = ('_built', )

    def __init__(self, *args):
        if args:
            _refuse(f'{type(self).__name__[1:]} called with arguments')
        self._built = False

    def __reduce_ex__(self, protocol):
        _refuse(f'{type(self).__name__} cannot be pickled')

    def _take_build(self):
        if getattr(self, '_built', False):
            _refuse(f'second BUILD on {type(self).__name__[1:]}')
        self._built = True


class _DTypeRecord(_Record):
    """``numpy.dtype(spec, align, copy)`` of a plain numeric dtype."""
    __slots__ = ('spec', 'dtype')

    def __init__(self, spec=None, *extra):
        self._built = False
        self.spec = spec
        self.dtype = None
        _plain_dtype(spec)
        if extra:
            _refuse('dtype record called with extra arguments')

    def __setstate__(self, state):
        self._take_build()
        if getattr(self, 'spec', None) is None:
            _refuse('numpy dtype without a spec')
        if not (isinstance(state, tuple) and len(state) in (8, 9)):
            _refuse(f'dtype state {_describe(state)} is not a plain dtype')
        version, order, subarray, names, fields, elsize, align, flags = \
            state[:8]
        if (version not in (3, 4) or order not in ('<', '>', '|', '=')
                or subarray is not None or names is not None
                or fields is not None or elsize != -1 or align != -1
                or flags != 0 or (len(state) == 9 and state[8] is not None)):
            _refuse('dtype state with fields, subarray, names, flags or '
                    f'metadata ({state!r:.80})')
        order = '' if order in ('|', '=') else order
        self.dtype = _plain_dtype(order + self.spec)


def _plain_dtype(spec):
    """``np.dtype(spec)`` when it is bool, (u)int, float or complex."""
    if not isinstance(spec, str) or len(spec) > 8:
        _refuse(f'numpy dtype spec {_describe(spec)}')
    try:
        dtype = np.dtype(spec)
    except TypeError:
        _refuse(f'numpy.dtype({spec!r})')
    if dtype.kind not in _DTYPE_KINDS or dtype.fields or dtype.subdtype:
        _refuse(f'numpy dtype {spec!r} (only bool, int, uint, float and '
                'complex are loaded)')
    return dtype


def _numpy_dtype(spec=None, align=False, copy=True, *extra):
    """Stand-in for ``numpy.dtype``: plain numeric specs only."""
    if (extra or not isinstance(spec, str) or align is not False
            or copy is not True):
        _refuse(f'numpy.dtype{(spec, align, copy) + extra!r:.80}')
    return _DTypeRecord(spec)


def _built_dtype(record):
    if not isinstance(record, _DTypeRecord) or record.dtype is None:
        _refuse(f'expected a numpy dtype, got {_describe(record)}')
    return record.dtype


class _NDArrayMarker:
    """What ``numpy.ndarray`` resolves to: an argument, never constructed."""

    def __new__(cls, *args, **kwargs):
        _refuse('numpy.ndarray constructed directly')


class _ArrayRecord(_Record):
    """An array from ``_reconstruct``; BUILD gives shape, dtype and bytes."""
    __slots__ = ('array', )

    def __setstate__(self, state):
        self._take_build()
        if not (isinstance(state, tuple) and len(state) == 5):
            _refuse(f'ndarray state {_describe(state)}')
        version, shape, dtype, fortran, raw = state
        dtype = _built_dtype(dtype)
        if (version != 1 or not isinstance(shape, tuple)
                or len(shape) > _MAX_NDIM
                or not all(type(n) is int and n >= 0
                           for n in shape) or type(fortran) is not bool
                or not isinstance(raw, (bytes, bytearray))):
            _refuse(f'ndarray state (shape {shape!r:.40}, data '
                    f'{_describe(raw)})')
        count = math.prod(shape)
        if len(raw) != count * dtype.itemsize:
            _refuse(f'ndarray of shape {shape} {dtype} with {len(raw)} '
                    'bytes of data')
        charge(2 * len(raw), f'a numpy array of shape {shape}')  # 2 copies
        self.array = np.frombuffer(
            bytes(raw), dtype=dtype, count=count).reshape(
                shape, order='F' if fortran else 'C').copy()


def _reconstruct(subtype=None, shape=None, typecode=None, *extra):
    """Stand-in for ``numpy._core.multiarray._reconstruct``."""
    if (extra or subtype is not _NDArrayMarker or shape != (0, )
            or typecode != b'b'):
        _refuse('numpy _reconstruct of anything but a plain ndarray')
    return _ArrayRecord()


def _scalar(dtype=None, data=None, *extra):
    """Stand-in for ``numpy._core.multiarray.scalar``: numeric only."""
    dtype = _built_dtype(dtype)
    if extra or not isinstance(data, bytes) or len(data) != dtype.itemsize:
        _refuse(f'numpy scalar of {dtype} from {_describe(data)}')
    return np.frombuffer(data, dtype=dtype)[0]


class _MethodRecord(_Record):
    __slots__ = ('name', )

    def __init__(self, name=None):
        if name not in _STATISTICS:
            _refuse(f'HistoryBuffer method {name!r:.40}')
        self._built = True  # never BUILT
        self.name = name


class _HistoryBufferRecord(_Record):
    """``mmengine.logging.HistoryBuffer``: only its four data fields."""
    __slots__ = ('state', )
    _KEYS = ('max_length', '_log_history', '_count_history',
             'statistics_methods')

    def __setstate__(self, state):
        self._take_build()
        if not isinstance(state, dict):
            _refuse(f'HistoryBuffer state {_describe(state)}')
        for key, value in state.items():
            if key not in self._KEYS:
                _refuse(f'HistoryBuffer state sets {key!r:.60}')
        if type(state.get('max_length', 0)) is not int:
            _refuse('HistoryBuffer max_length is not an int')
        for key in ('_log_history', '_count_history'):
            if key in state and not isinstance(state[key], _ArrayRecord):
                _refuse(f'HistoryBuffer {key} is {_describe(state[key])}')
        methods = state.get('statistics_methods', {})
        if not isinstance(methods, dict) or not all(
                isinstance(v, _MethodRecord) and k == v.name
                for k, v in methods.items()):
            _refuse('HistoryBuffer statistics_methods other than '
                    f'{", ".join(_STATISTICS)}')
        self.state = state


def _getattr(obj=None, name=None, *extra):
    """Stand-in for ``builtins.getattr``: HistoryBuffer's statistics only."""
    if extra or obj is not _HistoryBufferRecord or name not in _STATISTICS:
        _refuse(f'getattr({_describe(obj)}, {name!r:.40})')
    return _MethodRecord(name)


def _pairs():
    pairs = [
        (_getattr, 'builtins.getattr'),
        (_HistoryBufferRecord,
         'mmengine.logging.history_buffer.HistoryBuffer'),
        (_numpy_dtype, 'numpy.dtype'),
        (_NDArrayMarker, 'numpy.ndarray'),
    ]
    for core in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        pairs += [(_reconstruct, f'{core}._reconstruct'),
                  (_scalar, f'{core}.scalar')]
    # classes whose instances the unpickler creates and BUILDs; their
    # names are mmext's own, not reachable from a pickle's GLOBAL
    for cls in (_DTypeRecord, _ArrayRecord):
        pairs.append((cls, f'{__name__}.{cls.__name__}'))
    return pairs


#: ``(stand-in, "module.name")`` pairs for ``torch.serialization.safe_globals``
SAFE_GLOBALS = _pairs()


def materialize(obj):
    """Replace the records in a loaded checkpoint by real objects.

    Containers are updated in place (shared references stay shared);
    tuples are rebuilt.
    """
    return _Materializer().convert(obj)


class _Materializer:

    def __init__(self):
        self.memo = {}

    def convert(self, obj):
        key = id(obj)
        if key in self.memo:
            return self.memo[key]
        if isinstance(obj, _Record):
            out = self._record(obj)
        elif isinstance(obj, dict):
            self.memo[key] = obj
            items = [(self.convert(k), self.convert(v))
                     for k, v in obj.items()]
            obj.clear()
            obj.update(items)
            out = obj
        elif isinstance(obj, list):
            self.memo[key] = obj
            obj[:] = [self.convert(v) for v in obj]
            out = obj
        elif isinstance(obj, set):
            self.memo[key] = obj
            items = [self.convert(v) for v in obj]
            obj.clear()
            obj.update(items)
            out = obj
        elif type(obj) is tuple:
            out = tuple(self.convert(v) for v in obj)
        else:
            out = obj
        self.memo[key] = out
        return out

    def _record(self, rec):
        if isinstance(rec, _ArrayRecord):
            if not getattr(rec, '_built', False):
                _refuse('ndarray without state')
            return rec.array
        if isinstance(rec, _DTypeRecord):
            return _built_dtype(rec)
        if isinstance(rec, _MethodRecord):
            return getattr(HistoryBuffer, rec.name)
        if isinstance(rec, _HistoryBufferRecord):
            if not getattr(rec, '_built', False):
                _refuse('HistoryBuffer without state')
            buf = HistoryBuffer()
            state = rec.state
            buf.max_length = state.get('max_length', buf.max_length)
            for key in ('_log_history', '_count_history'):
                if key in state:
                    setattr(buf, key, self._record(state[key]))
            return buf
        _refuse(f'unexpected {_describe(rec)}')
