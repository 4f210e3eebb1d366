# Copyright (c) mmext contributors. All rights reserved.
"""One safe loader for every checkpoint an mmext process reads.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7
cannot load its own checkpoints that way (its message hub pickles a
``HistoryBuffer``, numpy arrays and ``getattr``). Upstream's fix is
``weights_only=False``, which lets any pickle run code; allowlisting the real
globals is not safe either (``getattr`` reaches ``eval``).
:func:`safe_torch_load` runs torch's weights-only unpickler with restricted
stand-ins for exactly those globals (:mod:`mmext.utils.safe_pickle`), loads
``.safetensors`` files with safetensors, and turns every failure into one
line naming the file. It opens regular files only (a FIFO never hangs it)
and bounds what a file may allocate to a factor of its size
(:mod:`mmext.utils.checkpoint_bounds`; torch bounds nothing).

:func:`register_safe_checkpoint_loader` (run by ``import mmext``) points every
mmengine checkpoint scheme at it -- local paths, ``http(s)://``,
``torchvision://`` / ``modelzoo://``, ``open-mmlab://`` / ``openmmlab://``,
``mmcls://``, ``pavi://``, ``s3://`` / ``petrel://`` -- and replaces
``torch.hub.load_state_dict_from_url`` and mmengine's ``load_url``, so
``load_from``, ``resume``, ``init_cfg=dict(type='Pretrained')``, torchvision
weight enums and the tools all go through it; downloads stop at a size
limit (:mod:`mmext.utils.checkpoint_download`), and a checkpoint that does
not fit the model it is loaded into is an error, not a logged warning
(:mod:`mmext.utils.checkpoint_keys`).
"""
import io
import os
import os.path as osp
import pickle
import pickletools
import re
import struct
import zipfile

import torch
from mmengine.runner import checkpoint as mme_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from .checkpoint_bounds import (ENV_MAX_EXPANSION, ArchiveError,
                                bounded_unpickling, check_tensors,
                                checkpoint_budget, inspect_safetensors,
                                inspect_zip)
from .checkpoint_download import download, download_limit, is_torch_zip
from .checkpoint_keys import install_key_checks, remember_source
from .fileio import InputFileError, open_regular_file
from .safe_pickle import REFUSED, SAFE_GLOBALS, BoundExceeded, materialize

__all__ = [
    'SAFE_GLOBALS', 'UnsafeCheckpointError', 'CorruptCheckpointError',
    'CheckpointBoundError', 'CheckpointMismatchError', 'safe_torch_load',
    'load_url_safely', 'register_safe_checkpoint_loader'
]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint's pickle does something mmext does not allow."""


class CorruptCheckpointError(RuntimeError):
    """The file is not a readable checkpoint."""


class CheckpointBoundError(UnsafeCheckpointError):
    """Loading the file would allocate more than its bound (README: "Safe
    checkpoints"): a memory bomb, or a file needing a larger
    ``MMEXT_CHECKPOINT_MAX_EXPANSION``."""


class CheckpointMismatchError(CorruptCheckpointError):
    """A readable checkpoint that is not a state dict for this model."""


_GLOBAL_RE = re.compile(r'GLOBAL ([\w.]+)')
_REFUSED_RE = re.compile(re.escape(REFUSED) + r' (.*)')
# torch's weights-only unpickler messages for operations a checkpoint
# written by torch.save never uses
_OPERAND_RE = re.compile(r'Unsupported operand (\d+)')
_UNSAFE_OPS = ('Trying to call reduce', 'Can only build',
               'Can only create new object', 'persistent_load id must be',
               'Only persistent_load of', 'Can only append to',
               'Can only SETITEM', 'Can only SETITEMS')
_FIX_UNSAFE = ('If you trust the file, re-save its tensors as a plain state '
               'dict (README: "Safe checkpoints")')
_FIX_CORRUPT = 're-download or re-save it'


def safe_torch_load(filename, map_location=None, max_expansion=None):
    """Load a checkpoint without letting it run code or exhaust memory.

    Args:
        filename (str | os.PathLike | file-like): A torch checkpoint (zip or
            legacy format: an mmengine checkpoint or a plain state dict from
            torchvision / timm / mmpretrain / transformers) or a
            ``.safetensors`` file. Paths must be regular files.
        map_location: As :func:`torch.load`. Defaults to None.
        max_expansion (float | None): The load may allocate at most this
            many times the file size, plus 1 MiB. Defaults to
            ``MMEXT_CHECKPOINT_MAX_EXPANSION`` or 4.

    Returns:
        The loaded object; numpy arrays and mmengine ``HistoryBuffer``
        objects are real ones, built after unpickling from validated data.

    Raises:
        UnsafeCheckpointError: The pickle names a global or does an operation
            mmext does not allow; nothing in it was executed.
        CheckpointBoundError: It would allocate more than its bound.
        CorruptCheckpointError: Empty, truncated, not a regular file, or not
            a checkpoint.
    """
    name = _display_name(filename)
    if not isinstance(filename, (str, os.PathLike)):
        obj = _load_stream(filename, name, map_location, max_expansion)
    else:
        path = osp.expanduser(os.fspath(filename))
        try:
            fh = open_regular_file(path, 'checkpoint')
        except InputFileError as e:
            raise CorruptCheckpointError(str(e)) from None
        with fh:
            obj = _load_stream(fh, name, map_location, max_expansion, path)
    remember_source(obj, name)
    return obj


def _load_stream(fh, name, map_location, max_expansion, path=None):
    try:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(0)
        head = fh.read(9)
        fh.seek(0)
    except (OSError, AttributeError, ValueError) as e:
        raise CorruptCheckpointError(
            f'{name} cannot be read from the start ({e})') from None
    if size == 0:
        raise CorruptCheckpointError(
            f'{name} is empty (0 bytes): {_FIX_CORRUPT}')
    budget = checkpoint_budget(size, max_expansion)
    try:
        if _is_safetensors(head, size):
            inspect_safetensors(fh, size, budget)
            return _load_safetensors(path or fh, name, map_location)
        is_zip = head[:4] == b'PK\x03\x04'
        records = inspect_zip(fh, size) if is_zip else None
        with bounded_unpickling(budget, records, size), \
                torch.serialization.safe_globals(SAFE_GLOBALS):
            obj = torch.load(fh, map_location=map_location, weights_only=True)
        obj = materialize(obj)
        check_tensors(obj, budget)
        return obj
    except ArchiveError as e:
        error = CheckpointBoundError if e.bound else CorruptCheckpointError
        raise error(f'{name} is refused: {e}; {_FIX_CORRUPT}') from None
    except BoundExceeded as e:
        raise CheckpointBoundError(
            f'{name} would allocate more than {e.limit} bytes '
            f'({budget.factor:g} x its {size}-byte file + 1 MiB): {e.what} '
            f'needs {e.nbytes}; nothing was loaded. If you trust it, raise '
            f'{ENV_MAX_EXPANSION}') from None
    except FileNotFoundError:
        raise
    except RecursionError:
        raise CorruptCheckpointError(
            f'{name} is nested too deeply to be a checkpoint') from None
    except Exception as e:  # every failure of an untrusted file is one line
        looks_like_torch = head[:1] == b'\x80' or head[:4] == b'PK\x03\x04'
        raise _classify(e, name, looks_like_torch) from None


def _classify(exc, name, looks_like_torch=True):
    text = str(exc)
    refused = _REFUSED_RE.search(text)
    if refused:
        return UnsafeCheckpointError(
            f'{name} refused: {refused.group(1).splitlines()[0]} (nothing '
            f'was executed). {_FIX_UNSAFE}')
    match = _GLOBAL_RE.search(text)
    if match:
        return UnsafeCheckpointError(
            f'{name} refused: its pickle references `{match.group(1)}`, '
            f'which mmext does not allowlist (nothing was executed). '
            f'{_FIX_UNSAFE}')
    operand = _OPERAND_RE.search(text) if looks_like_torch else None
    if operand and chr(int(operand.group(1))) in pickletools.code2op:
        op = pickletools.code2op[chr(int(operand.group(1)))].name
        return UnsafeCheckpointError(
            f'{name} refused: its pickle uses opcode {op}, which torch '
            f'checkpoints never use (nothing was executed). {_FIX_UNSAFE}')
    if looks_like_torch and any(op in text for op in _UNSAFE_OPS):
        return UnsafeCheckpointError(
            f'{name} refused: its pickle does what a torch checkpoint never '
            f'does ({_reason(text)}; nothing was executed). {_FIX_UNSAFE}')
    kind = ('truncated or corrupt' if isinstance(
        exc, (EOFError, OSError, zipfile.BadZipFile, struct.error,
              pickle.UnpicklingError, RuntimeError)) else 'unreadable')
    reason = _reason(text) or type(exc).__name__
    return CorruptCheckpointError(
        f'{name} is not a readable checkpoint ({kind}: {reason}); '
        f'{_FIX_CORRUPT}')


def _reason(text):
    """The line of torch's message that says what failed."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(
            ('Weights only load failed', 'Check the documentation',
             'Please file an issue', '(1)', '(2)', 'WeightsUnpickler')):
            return line.rstrip('.')[:200]
    return ''


def _display_name(filename):
    if isinstance(filename, (str, os.PathLike)):
        return os.fspath(filename)
    return getattr(filename, 'name', None) or '<checkpoint stream>'


def _is_safetensors(head, file_size):
    """safetensors: 8-byte little-endian header size, then a JSON object."""
    if len(head) < 9 or head[8:9] != b'{':
        return False
    size = struct.unpack('<Q', head[:8])[0]
    return 2 <= size < 100 * 2**20 and size + 8 <= file_size


def _load_safetensors(source, name, map_location):
    from safetensors import SafetensorError
    from safetensors.torch import load, load_file
    device = map_location if isinstance(map_location, str) else 'cpu'
    try:
        if isinstance(source, str):
            return load_file(source, device=device)
        return {k: v.to(device) for k, v in load(source.read()).items()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CorruptCheckpointError(
            f'{name} is not a readable safetensors file ({e}); '
            f'{_FIX_CORRUPT}') from None


# --------------------------------------------------------------------------
# remote checkpoints: download into torch's hub cache, then load safely


def load_url_safely(url,
                    model_dir=None,
                    map_location=None,
                    progress=True,
                    check_hash=False,
                    file_name=None,
                    max_download=None,
                    max_expansion=None,
                    **kwargs):
    """``torch.hub.load_state_dict_from_url`` through :func:`safe_torch_load`.

    Same arguments and cache (``<torch hub dir>/checkpoints``); a cached file
    is loaded as safely as a fresh download. In distributed runs rank 0
    downloads first. Unlike torch.hub, a download stops at ``max_download``
    bytes (default ``MMEXT_CHECKPOINT_MAX_DOWNLOAD`` or 4 GiB), and the file
    gets :func:`safe_torch_load`'s bounds (``max_expansion``).
    """
    from mmengine.dist import barrier, get_dist_info
    rank, world_size = get_dist_info()
    args = (url, model_dir, progress, check_hash, file_name,
            download_limit(max_download))
    if rank == 0:
        path = download(*args)
    if world_size > 1:
        barrier()
        if rank > 0:
            path = download(*args)
    if zipfile.is_zipfile(path) and not is_torch_zip(path):
        raise CorruptCheckpointError(
            f'{path} (from {url}) is a zip archive, not a torch checkpoint; '
            'extract it and load the checkpoint file inside')
    return safe_torch_load(
        path, map_location=map_location, max_expansion=max_expansion)


def _load_from_local(filename, map_location):
    filename = osp.expanduser(filename)
    if not osp.exists(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    return safe_torch_load(filename, map_location=map_location)


def _load_from_http(filename, map_location=None, model_dir=None):
    return load_url_safely(
        filename,
        model_dir=model_dir,
        map_location=map_location,
        progress=os.isatty(0))


def _load_from_torchvision(filename, map_location=None):
    name = filename.split('://', 1)[1]
    urls = mme_checkpoint.get_torchvision_models()
    if name not in urls:
        raise KeyError(f'{filename}: torchvision has no weights named {name}')
    return _load_from_http(urls[name], map_location=map_location)


def _load_from_openmmlab(filename, map_location=None):
    name = filename.split('://', 1)[1]
    name = mme_checkpoint.get_deprecated_model_names().get(name, name)
    url = mme_checkpoint.get_external_models()[name]
    if url.startswith(('http://', 'https://')):
        return _load_from_http(url, map_location=map_location)
    return _load_from_local(
        osp.join(mme_checkpoint._get_mmengine_home(), url), map_location)


def _load_from_mmcls(filename, map_location=None):
    url = mme_checkpoint.get_mmcls_models()[filename[len('mmcls://'):]]
    return mme_checkpoint._process_mmcls_checkpoint(
        _load_from_http(url, map_location=map_location))


def _load_from_backend(filename, map_location=None):
    """s3:// and petrel:// through mmengine's file backend, loaded safely."""
    from mmengine.fileio import get_file_backend
    backend = get_file_backend(filename, backend_args={'backend': 'petrel'})
    with io.BytesIO(backend.get(filename)) as buffer:
        buffer.name = filename
        return safe_torch_load(buffer, map_location=map_location)


def _load_from_pavi(filename, map_location=None):
    import tempfile
    try:
        from pavi import modelcloud
    except ImportError:
        raise ImportError(
            'Please install pavi to load checkpoint from modelcloud.')
    model = modelcloud.get(filename[len('pavi://'):])
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, osp.basename(model.name))
        model.download(path)
        return safe_torch_load(path, map_location=map_location)


_SCHEMES = [
    ('', _load_from_local),
    (('http://', 'https://'), _load_from_http),
    (('modelzoo://', 'torchvision://'), _load_from_torchvision),
    (('open-mmlab://', 'openmmlab://'), _load_from_openmmlab),
    ('mmcls://', _load_from_mmcls),
    ('pavi://', _load_from_pavi),
    ([r'(\S+\:)?s3://', r'(\S+\:)?petrel://'], _load_from_backend),
]


def register_safe_checkpoint_loader():
    """Route every checkpoint mmengine, torch.hub and torchvision load here.

    Covers ``load_from``, ``resume``, ``init_cfg=dict(type='Pretrained')``,
    :func:`mmengine.runner.load_checkpoint`, torchvision's
    ``weights.get_state_dict()`` and ``torch.hub.load_state_dict_from_url``.
    """
    for prefixes, loader in _SCHEMES:
        CheckpointLoader.register_scheme(
            prefixes=prefixes, loader=loader, force=True)
    torch.hub.load_state_dict_from_url = load_url_safely
    mme_checkpoint.load_url = load_url_safely
    from mmengine.utils import dl_utils
    dl_utils.load_url = load_url_safely
    import sys
    api = sys.modules.get('torchvision.models._api')
    if api is not None and hasattr(api, 'load_state_dict_from_url'):
        api.load_state_dict_from_url = load_url_safely
    install_key_checks()
