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
line naming the file.

:func:`register_safe_checkpoint_loader` (run by ``import mmext``) points every
mmengine checkpoint scheme at it -- local paths, ``http(s)://``,
``torchvision://`` / ``modelzoo://``, ``open-mmlab://`` / ``openmmlab://``,
``mmcls://``, ``pavi://``, ``s3://`` / ``petrel://`` -- and replaces
``torch.hub.load_state_dict_from_url`` and mmengine's ``load_url``, so
``load_from``, ``resume``, ``init_cfg=dict(type='Pretrained')``, torchvision
weight enums and the tools all go through it.
"""
import io
import os
import os.path as osp
import pickle
import pickletools
import re
import struct
import zipfile
from urllib.parse import urlparse

import torch
from mmengine.runner import checkpoint as mme_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from .safe_pickle import REFUSED, SAFE_GLOBALS, materialize

__all__ = [
    'SAFE_GLOBALS', 'UnsafeCheckpointError', 'CorruptCheckpointError',
    'safe_torch_load', 'load_url_safely', 'register_safe_checkpoint_loader'
]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint's pickle does something mmext does not allow."""


class CorruptCheckpointError(RuntimeError):
    """The file is not a readable checkpoint."""


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


def safe_torch_load(filename, map_location=None):
    """Load a checkpoint without letting it run code.

    Args:
        filename (str | os.PathLike | file-like): A torch checkpoint (zip or
            legacy format: an mmengine checkpoint or a plain state dict from
            torchvision / timm / mmpretrain / transformers) or a
            ``.safetensors`` file.
        map_location: As :func:`torch.load`. Defaults to None.

    Returns:
        The loaded object; numpy arrays and mmengine ``HistoryBuffer``
        objects are real ones, built after unpickling from validated data.

    Raises:
        UnsafeCheckpointError: The pickle names a global or does an operation
            mmext does not allow; nothing in it was executed.
        CorruptCheckpointError: Empty, truncated, or not a checkpoint.
    """
    name = _display_name(filename)
    if isinstance(filename, (str, os.PathLike)):
        filename = osp.expanduser(os.fspath(filename))
        if osp.isdir(filename):
            raise CorruptCheckpointError(
                f'{name} is a directory, not a checkpoint file')
        if osp.isfile(filename) and osp.getsize(filename) == 0:
            raise CorruptCheckpointError(
                f'{name} is empty (0 bytes): {_FIX_CORRUPT}')
        if _is_safetensors(filename):
            return _load_safetensors(filename, name, map_location)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            obj = torch.load(
                filename, map_location=map_location, weights_only=True)
        return materialize(obj)
    except FileNotFoundError:
        raise
    except RecursionError:
        raise CorruptCheckpointError(
            f'{name} is nested too deeply to be a checkpoint') from None
    except Exception as e:  # every failure of an untrusted file is one line
        raise _classify(e, name, _starts_like_torch(filename)) from None


def _starts_like_torch(f):
    """A zip archive or a stream starting with pickle's PROTO opcode.

    torch reads anything else as a legacy pickle too, so an odd opcode in
    a file that is neither is damage, not an attack.
    """
    try:
        if isinstance(f, str):
            with open(f, 'rb') as fh:
                head = fh.read(1)
            return head == b'\x80' or zipfile.is_zipfile(f)
        pos = f.tell()
        f.seek(0)
        head = f.read(1)
        f.seek(0)
        is_zip = zipfile.is_zipfile(f)
        f.seek(pos)
        return head == b'\x80' or is_zip
    except (OSError, AttributeError, ValueError):
        return False


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


def _is_safetensors(filename):
    """safetensors: 8-byte little-endian header size, then a JSON object."""
    try:
        with open(filename, 'rb') as f:
            head = f.read(9)
    except OSError:
        return False
    if len(head) < 9 or head[8:9] != b'{':
        return False
    size = struct.unpack('<Q', head[:8])[0]
    return 2 <= size < 100 * 2**20 and size + 8 <= osp.getsize(filename)


def _load_safetensors(filename, name, map_location):
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    device = map_location if isinstance(map_location, str) else 'cpu'
    try:
        return load_file(filename, device=device)
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
                    **kwargs):
    """``torch.hub.load_state_dict_from_url`` through :func:`safe_torch_load`.

    Same arguments and cache (``<torch hub dir>/checkpoints``); a cached file
    is loaded as safely as a fresh download. In distributed runs rank 0
    downloads first.
    """
    from mmengine.dist import barrier, get_dist_info
    rank, world_size = get_dist_info()
    if rank == 0:
        path = _download(url, model_dir, progress, check_hash, file_name)
    if world_size > 1:
        barrier()
        if rank > 0:
            path = _download(url, model_dir, progress, check_hash, file_name)
    if zipfile.is_zipfile(path) and not _is_torch_zip(path):
        raise CorruptCheckpointError(
            f'{path} (from {url}) is a zip archive, not a torch checkpoint; '
            'extract it and load the checkpoint file inside')
    return safe_torch_load(path, map_location=map_location)


def _download(url, model_dir, progress, check_hash, file_name):
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    name = file_name or osp.basename(urlparse(url).path)
    if not name or name in ('.', '..') or '/' in name or '\\' in name:
        raise CorruptCheckpointError(
            f'{url} does not end in a file name; pass file_name=')
    os.makedirs(model_dir, exist_ok=True)
    cached = osp.join(model_dir, name)
    if not osp.exists(cached):
        digest = None
        if check_hash:
            found = torch.hub.HASH_REGEX.search(name)
            digest = found.group(1) if found else None
        torch.hub.download_url_to_file(url, cached, digest, progress=progress)
    return cached


def _is_torch_zip(path):
    with zipfile.ZipFile(path) as z:
        return any(n.endswith('data.pkl') for n in z.namelist())


def _load_from_local(filename, map_location):
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
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
