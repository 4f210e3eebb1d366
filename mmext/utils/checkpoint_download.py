# Copyright (c) mmext contributors. All rights reserved.
"""Downloads of remote checkpoints into torch's hub cache, with a size limit.

``torch.hub.download_url_to_file`` streams until the server stops, so a URL
can fill the disk; :func:`download` stops at ``MMEXT_CHECKPOINT_MAX_DOWNLOAD``
bytes (default 4 GiB; ``4G``, ``500M`` or plain bytes), checked against the
``Content-Length`` first and against the bytes received.
"""
import hashlib
import os
import os.path as osp
import tempfile
import urllib.request
import zipfile
from urllib.parse import urlparse

import torch

__all__ = ['ENV_MAX_DOWNLOAD', 'download_limit', 'download', 'is_torch_zip']

ENV_MAX_DOWNLOAD = 'MMEXT_CHECKPOINT_MAX_DOWNLOAD'
DEFAULT_MAX_DOWNLOAD = '4G'


def download_limit(value=None):
    """The download limit in bytes: ``value``, the env var, or 4 GiB."""
    if value is None:
        value = os.environ.get(ENV_MAX_DOWNLOAD, DEFAULT_MAX_DOWNLOAD)
    text = str(value).strip().upper().rstrip('B').rstrip('I')
    scale = 1024**' KMGT'.index(text[-1]) if text[-1:] in 'KMGT' else 1
    try:
        limit = int(float(text.rstrip('KMGT')) * scale)
    except ValueError:
        limit = 0
    if limit <= 0:
        raise ValueError(f'{ENV_MAX_DOWNLOAD}={value!r} is not a size: use '
                         'bytes or e.g. 4G')
    return limit


def download(url, model_dir, progress, check_hash, file_name, limit):
    """Download ``url`` into the hub cache unless cached; return the path."""
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    name = file_name or osp.basename(urlparse(url).path)
    if not name or name in ('.', '..') or '/' in name or '\\' in name:
        from .checkpoint import CorruptCheckpointError
        raise CorruptCheckpointError(
            f'{url} does not end in a file name; pass file_name=')
    os.makedirs(model_dir, exist_ok=True)
    cached = osp.join(model_dir, name)
    if not osp.exists(cached):
        digest = None
        if check_hash:
            found = torch.hub.HASH_REGEX.search(name)
            digest = found.group(1) if found else None
        _download_bounded(url, cached, digest, progress, limit)
    return cached


def _download_bounded(url, dst, digest, progress, limit):
    """torch.hub's ``download_url_to_file`` that stops at ``limit`` bytes."""
    from tqdm import tqdm

    from .checkpoint import CheckpointBoundError, CorruptCheckpointError
    too_big = (f'{url} is larger than the download limit of {limit} bytes '
               f'({ENV_MAX_DOWNLOAD}): check the URL, or raise the limit')
    request = urllib.request.Request(url, headers={'User-Agent': 'mmext'})
    with urllib.request.urlopen(request, timeout=60) as response:
        length = response.headers.get('Content-Length', '')
        if length.isdigit() and int(length) > limit:
            raise CheckpointBoundError(too_big)
        sha256 = hashlib.sha256()
        tmp = tempfile.NamedTemporaryFile(
            dir=osp.dirname(dst), prefix='.partial-', delete=False)
        try:
            with tmp, tqdm(
                    total=int(length) if length.isdigit() else None,
                    disable=not progress,
                    unit='B',
                    unit_scale=True) as bar:
                total = 0
                while chunk := response.read(1 << 20):
                    total += len(chunk)
                    if total > limit:
                        raise CheckpointBoundError(too_big)
                    tmp.write(chunk)
                    sha256.update(chunk)
                    bar.update(len(chunk))
            if digest and not sha256.hexdigest().startswith(digest):
                raise CorruptCheckpointError(
                    f'{url}: its sha256 does not start with {digest} (the '
                    'hash in its file name): re-download it')
            os.replace(tmp.name, dst)
        finally:
            if osp.exists(tmp.name):
                os.remove(tmp.name)


def is_torch_zip(path):
    with zipfile.ZipFile(path) as z:
        return any(n.endswith('data.pkl') for n in z.namelist())
