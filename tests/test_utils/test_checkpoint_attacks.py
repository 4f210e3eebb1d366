# Copyright (c) mmext contributors. All rights reserved.
"""Checkpoints crafted as an attacker would: each is refused, nothing runs.

Every payload, if executed, creates a marker file; each test asserts the
load is refused with one line naming the file and that the marker is absent.
Controls show the central payloads are live (they do run under a plain
allowlist of the real globals).
"""
import io
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import load_checkpoint

from mmext.testing.pickles import (Asm, getattr_eval_chain, marker_code,
                                   write_legacy_checkpoint,
                                   write_tar_checkpoint, write_zip_checkpoint)
from mmext.utils import (CorruptCheckpointError, UnsafeCheckpointError,
                         safe_torch_load)
from mmext.utils.checkpoint import SAFE_GLOBALS
from tests.conftest import ROOT


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / 'PWNED'
    yield path
    assert not path.exists(), 'a payload ran'


def _system(marker):
    return f'touch {marker}'


def _refused(path, error=UnsafeCheckpointError):
    with pytest.raises(error) as e:
        safe_torch_load(str(path))
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and str(path) in msg, msg
    return msg


def _in_zip(tmp_path, asm, name='evil.pth'):
    return write_zip_checkpoint(tmp_path / name, asm.bytes())


# --- payloads: (name, function of marker path -> Asm pushing one object) ---


def _os_system(m):
    return Asm().glob('os', 'system').str(_system(m)).tuple1().reduce()


def _posix_system(m):
    return Asm().glob('posix', 'system').str(_system(m)).tuple1().reduce()


def _stack_global(m):
    return Asm(proto=4).stack_glob('os',
                                   'system').str(_system(m)).tuple1().reduce()


def _builtins_eval(m):
    return Asm().glob('builtins', 'eval').str(marker_code(m)).tuple1().reduce()


def _builtin_exec(m):  # protocol-2 spelling of builtins
    return Asm().glob('__builtin__',
                      'exec').str(marker_code(m)).tuple1().reduce()


def _getattr_chain(m):
    return getattr_eval_chain(marker_code(m))


def _getattr_on_numpy(m):  # getattr(numpy.dtype, ...) to walk to a module
    return (Asm().glob('builtins', 'getattr').glob(
        'numpy', 'dtype').str('__init__').tuple2().reduce())


def _getattr_dunder_of_history(m):
    return (Asm().glob('builtins', 'getattr').glob(
        'mmengine.logging.history_buffer',
        'HistoryBuffer').str('__init__').tuple2().reduce())


def _history_dunder(key):

    def payload(m):
        a = Asm().glob('mmengine.logging.history_buffer', 'HistoryBuffer')
        a.empty_tuple().newobj().empty_dict().str(key).str('x').setitem()
        return a.build()

    return payload


def _history_tuple_state(m):  # (state, slotstate) form of BUILD
    a = Asm().glob('mmengine.logging.history_buffer', 'HistoryBuffer')
    a.empty_tuple().newobj().none().empty_dict().str('__setstate__')
    a.str('x').setitem().tuple2()
    return a.build()


def _history_stat_injection(m):  # a non-statistics callable in the methods
    a = Asm().glob('mmengine.logging.history_buffer', 'HistoryBuffer')
    a.empty_tuple().newobj().empty_dict().str('statistics_methods')
    a.empty_dict().str('min').glob('builtins', 'getattr')
    a.glob('mmengine.logging.history_buffer', 'HistoryBuffer')
    a.str('update').tuple2().reduce().setitem().setitem()
    return a.build()


def _history_reduce_args(m):  # HistoryBuffer(...) called through REDUCE
    a = Asm().glob('mmengine.logging.history_buffer', 'HistoryBuffer')
    return a.empty_list().empty_list().int(5).tuple3().reduce()


def _history_twice(m):  # second BUILD on the same record
    a = Asm().glob('mmengine.logging.history_buffer', 'HistoryBuffer')
    a.empty_tuple().newobj().empty_dict().build().empty_dict().build()
    return a


def _dtype(spec, state=(3, '<', None, None, None, -1, -1, 0), args=None):
    a = Asm().glob('numpy', 'dtype')
    a.str(spec)
    if args is None:
        a.false().true().tuple3()
    else:
        args(a)
    a.reduce()
    if state is not None:
        a.mark()
        for item in state:
            if item is None:
                a.none()
            elif isinstance(item, str):
                a.str(item)
            else:
                a.int(item)
        a.tuple().build()
    return a


def _object_dtype(m):
    return _dtype('O', state=(3, '|', None, None, None, -1, -1, 63))


def _dtype_flags(m):  # hasobject/refcount flags on a float dtype
    return _dtype('f8', state=(3, '<', None, None, None, -1, -1, 63))


def _dtype_fields(m):
    a = _dtype('V8', state=None)
    return a


def _dtype_no_copy(m):  # copy=False would mutate numpy's float64 singleton
    return _dtype('f8', args=lambda a: a.false().false().tuple3())


def _reconstruct(m, subtype=('numpy', 'ndarray')):
    return (Asm().glob('numpy._core.multiarray', '_reconstruct').glob(
        *subtype).int(0).tuple1().bytes_(b'b').tuple3().reduce())


def _reconstruct_subtype(m):  # _reconstruct of a class other than ndarray
    return _reconstruct(
        m, subtype=('mmengine.logging.history_buffer', 'HistoryBuffer'))


def _object_array(m):
    """An ndarray whose BUILD state is an object dtype + a list of objects."""
    a = _reconstruct(m)
    a.mark().int(1).int(1).tuple1()
    dt = _dtype('O', state=(3, '|', None, None, None, -1, -1, 63))
    a.out += dt.out
    a.false().empty_list().str('x').append().tuple().build()
    return a


def _array_short_data(m):  # shape says 1000 floats, data has 8 bytes
    a = _reconstruct(m)
    a.mark().int(1).int(1000).tuple1()
    a.out += _dtype('f8').out
    a.false().bytes_(b'\0' * 8).tuple().build()
    return a


def _scalar_object(m):
    a = Asm().glob('numpy._core.multiarray', 'scalar')
    a.out += _dtype('O', state=(3, '|', None, None, None, -1, -1, 63)).out
    return a.str('x').tuple2().reduce()


def _ndarray_direct(m):
    return Asm().glob('numpy', 'ndarray').int(3).tuple1().reduce()


def _rebuild_from_type(m):  # torch's allowlisted helper calling our getattr
    a = Asm().glob('torch._tensor', '_rebuild_from_type_v2')
    a.mark().glob('builtins', 'getattr').glob('torch', 'Tensor')
    a.glob('builtins', 'getattr').str('__self__').tuple2()
    a.empty_dict().tuple()  # (func, new_type, args, state)
    return a.reduce()


def _inst_opcode(m):  # protocol 0 INST
    a = Asm(proto=2)
    return a.mark().str(_system(m)).op(b'ios\nsystem\n')


def _obj_opcode(m):  # protocol 1 OBJ
    return Asm().mark().glob('os', 'system').str(_system(m)).op(b'o')


def _ext_opcode(m):  # EXT1 through the copyreg extension registry
    return Asm().op(b'\x82\x01')


def _persid_not_storage(m):
    return Asm().str('module').tuple1().op(b'Q')


def _setattr_via_rebuild_param(m):
    a = Asm().glob('torch._utils', '_rebuild_parameter_with_state')
    a.mark().glob('builtins', 'getattr').false().empty_dict()
    a.empty_dict().str('__setstate__').glob('builtins', 'getattr').setitem()
    return a.tuple().reduce()


PAYLOADS = {
    'os.system': _os_system,
    'posix.system': _posix_system,
    'STACK_GLOBAL': _stack_global,
    'builtins.eval': _builtins_eval,
    '__builtin__.exec': _builtin_exec,
    'getattr->eval via HistoryBuffer BUILD': _getattr_chain,
    'getattr(numpy.dtype)': _getattr_on_numpy,
    'getattr(HistoryBuffer, __init__)': _getattr_dunder_of_history,
    'HistoryBuffer BUILD __setstate__': _history_dunder('__setstate__'),
    'HistoryBuffer BUILD __reduce__': _history_dunder('__reduce__'),
    'HistoryBuffer BUILD __class__': _history_dunder('__class__'),
    'HistoryBuffer BUILD __dict__': _history_dunder('__dict__'),
    'HistoryBuffer BUILD other key': _history_dunder('update'),
    'HistoryBuffer slotstate': _history_tuple_state,
    'HistoryBuffer statistics injection': _history_stat_injection,
    'HistoryBuffer REDUCE args': _history_reduce_args,
    'HistoryBuffer BUILD twice': _history_twice,
    'numpy object dtype': _object_dtype,
    'numpy dtype flags': _dtype_flags,
    'numpy void dtype': _dtype_fields,
    'numpy dtype copy=False': _dtype_no_copy,
    '_reconstruct(HistoryBuffer)': _reconstruct_subtype,
    'numpy object array': _object_array,
    'numpy array short data': _array_short_data,
    'numpy object scalar': _scalar_object,
    'numpy.ndarray called': _ndarray_direct,
    '_rebuild_from_type_v2(getattr)': _rebuild_from_type,
    'INST': _inst_opcode,
    'OBJ': _obj_opcode,
    'EXT1': _ext_opcode,
    'persistent id not a storage': _persid_not_storage,
    '_rebuild_parameter_with_state(getattr)': _setattr_via_rebuild_param,
}


@pytest.mark.parametrize('name', list(PAYLOADS))
def test_crafted_pickle_refused_in_zip(name, tmp_path, marker):
    path = _in_zip(tmp_path, PAYLOADS[name](marker))
    with pytest.raises((UnsafeCheckpointError, CorruptCheckpointError)) as e:
        safe_torch_load(str(path))
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and str(path) in msg, msg


@pytest.mark.parametrize('where', ['magic', 'sys_info', 'main'])
@pytest.mark.parametrize('name', [
    'os.system', 'getattr->eval via HistoryBuffer BUILD', 'INST',
    'numpy object array'
])
def test_crafted_pickle_refused_in_legacy_format(name, where, tmp_path,
                                                 marker):
    path = write_legacy_checkpoint(
        tmp_path / 'legacy.pth', PAYLOADS[name](marker).bytes(), where=where)
    with pytest.raises((UnsafeCheckpointError, CorruptCheckpointError)) as e:
        safe_torch_load(str(path))
    assert str(path) in str(e.value)


def test_tar_format_refused(tmp_path, marker):
    path = write_tar_checkpoint(tmp_path / 'old.tar',
                                _getattr_chain(marker).bytes())
    msg = _refused(path, (UnsafeCheckpointError, CorruptCheckpointError))
    assert 'tar' in msg


def test_refusals_name_the_cause(tmp_path, marker):
    """The messages say what was refused, not just that loading failed."""
    cases = {
        'os.system': '`os.system`',
        'getattr->eval via HistoryBuffer BUILD':
        "getattr(function, '__self__')",
        'HistoryBuffer BUILD __setstate__': "sets '__setstate__'",
        'numpy object dtype': "'O'",
        'INST': 'opcode INST',
    }
    for name, expected in cases.items():
        path = _in_zip(tmp_path, PAYLOADS[name](marker), name + '.pth')
        msg = _refused(path)
        assert expected in msg and 'nothing was executed' in msg, msg


def test_controls_the_chain_is_live(tmp_path):
    """Under an allowlist of the *real* globals the chain runs: the tests
    above refuse a working exploit, not a malformed file."""
    marker = tmp_path / 'ran'
    path = _in_zip(tmp_path, getattr_eval_chain(marker_code(marker)))
    with torch.serialization.safe_globals([HistoryBuffer, getattr]):
        torch.load(str(path), weights_only=True)
    assert marker.exists()
    marker.unlink()
    pickle.loads(_os_system(marker).bytes())
    assert marker.exists()


def test_allowlist_holds_no_reacher():
    """Nothing that can reach arbitrary objects is allowlisted as itself."""
    import builtins
    import functools
    import operator
    forbidden = {
        getattr, eval, exec, builtins.__import__, type, compile,
        operator.attrgetter, operator.methodcaller, functools.partial, setattr,
        globals, vars, HistoryBuffer, np.dtype, np.ndarray
    }
    for obj, name in SAFE_GLOBALS:
        assert obj not in forbidden, name


def test_every_api_and_mmengine_entry_refuses(tmp_path, marker):
    path = _in_zip(tmp_path, _getattr_chain(marker))
    model = torch.nn.Linear(1, 1)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(model, str(path))
    with pytest.raises(UnsafeCheckpointError):  # file-like objects too
        safe_torch_load(io.BytesIO(path.read_bytes()))
    from mmengine.model import PretrainedInit
    with pytest.raises(UnsafeCheckpointError):
        PretrainedInit(checkpoint=str(path))(model)


class TrustedPoint:
    """A plain data class a user may choose to trust (README)."""

    def __init__(self, x=0):
        self.x = x


def test_user_trusted_class_loads_only_when_added(tmp_path):
    path = tmp_path / 'point.pth'
    torch.save({'p': TrustedPoint(3)}, path)
    with pytest.raises(UnsafeCheckpointError, match='TrustedPoint'):
        safe_torch_load(str(path))
    with torch.serialization.safe_globals([TrustedPoint]):
        assert safe_torch_load(str(path))['p'].x == 3


def test_no_unpickling_path_bypasses_the_safe_loader():
    """Package, tools and benchmarks never unpickle around safe_torch_load."""
    import re
    root = ROOT
    pattern = re.compile(r'torch\.load\(|pickle\.loads?\(|allow_pickle\s*=\s*'
                         r'True|load_state_dict_from_url\(|joblib\.load\(|'
                         r'Model\.from_pretrained\(')
    allowed = {'mmext/utils/checkpoint.py'}
    offenders = []
    for folder in ('mmext', 'tools', 'benchmarks', 'configs'):
        for path in (root / folder).rglob('*.py'):
            rel = path.relative_to(root).as_posix()
            if rel in allowed:
                continue
            for no, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line.split('#')[0]):
                    offenders.append(f'{rel}:{no}: {line.strip()}')
    assert not offenders, '\n'.join(offenders)
