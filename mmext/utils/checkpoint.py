# Copyright (c) mmext contributors. All rights reserved.
"""Safe checkpoint loading on torch >= 2.6.

torch 2.6 made ``torch.load(weights_only=True)`` the default, and mmengine
0.10.7 cannot load its own checkpoints that way (its message hub pickles a
``HistoryBuffer`` and numpy arrays). Upstream's fix is ``weights_only=False``,
which lets any pickle run code. mmext instead allowlists exactly the globals
an mmengine checkpoint contains and replaces mmengine's local-file loader with
one that always passes ``weights_only=True`` and turns torch's errors into
one-line causes and fixes.
"""
import os.path as osp
import pickle
import re
import zipfile

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = [
    'SAFE_GLOBALS', 'UnsafeCheckpointError', 'CorruptCheckpointError',
    'safe_torch_load', 'register_safe_checkpoint_loader'
]


def _numpy_globals():
    core = getattr(np, '_core', None) or np.core  # numpy 2.x / 1.x
    dtype_classes = [
        getattr(np.dtypes, name) for name in dir(np.dtypes)
        if name.endswith('DType')
    ]
    return [
        core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray,
        np.dtype, *dtype_classes
    ]


#: Everything a checkpoint written by mmengine 0.10.7 references besides
#: tensors and builtin containers. ``getattr`` is how numpy pickles a
#: scalar's dtype; the weights-only unpickler still refuses to call anything
#: that is not in this list.
SAFE_GLOBALS = [HistoryBuffer, getattr, *_numpy_globals()]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint's pickle references a global outside the allowlist."""


class CorruptCheckpointError(RuntimeError):
    """The file is not a readable torch checkpoint."""


_GLOBAL_RE = re.compile(r'GLOBAL ([\w.]+)')


def safe_torch_load(filename, map_location=None):
    """``torch.load(filename, weights_only=True)`` with mmext's allowlist.

    Args:
        filename (str): Path of a checkpoint (mmengine checkpoint or a plain
            state dict from torchvision / timm / mmpretrain).
        map_location: As :func:`torch.load`.

    Raises:
        UnsafeCheckpointError: The pickle references a non-allowlisted global
            (nothing in it was executed).
        CorruptCheckpointError: Truncated or not a checkpoint at all.
    """
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        match = _GLOBAL_RE.search(text)
        if match is None:  # no callable referenced: damaged, not dangerous
            raise CorruptCheckpointError(
                f'{filename} is not a readable checkpoint ({_reason(text)}); '
                're-download or re-save it') from None
        raise UnsafeCheckpointError(
            f'{filename} refused: its pickle references `{match.group(1)}`, '
            'which mmext does not allowlist (nothing was executed). If you '
            'trust the file, re-save its tensors as a plain state dict, or '
            'add the class with torch.serialization.add_safe_globals().'
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as e:
        raise CorruptCheckpointError(
            f'{filename} is not a readable checkpoint (truncated or '
            f'corrupt: {_first_line(e)}); re-download or re-save it') from None


def _reason(text):
    """The line of torch's weights-only message that says what failed."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(
                ('Weights only load failed', 'Check the documentation',
                 'Please file an issue')):
            return line.rstrip('.')
    return 'unknown reason'


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _load_from_local(filename, map_location):
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    return safe_torch_load(filename, map_location=map_location)


def register_safe_checkpoint_loader():
    """Make mmengine load local checkpoints with :func:`safe_torch_load`.

    Covers ``load_from``, ``resume``, ``init_cfg=dict(type='Pretrained')``
    and :func:`mmengine.runner.load_checkpoint`.
    """
    CheckpointLoader.register_scheme(
        prefixes='', loader=_load_from_local, force=True)
