# Copyright (c) mmext contributors. All rights reserved.
"""Hash a collection in shards on many machines, merge, then search once.

Shard ``i`` of ``n`` hashes inputs ``i, i + n, i + 2n, ...`` (strided, so
shards are balanced whatever the folder order) and saves them to
``<folder>/<name>.shard-<i>-of-<n>.npz`` (numpy arrays and strings only,
read back without pickle; file names escaped by
:func:`mmext.dedup.textio.escape_path`; written atomically, so a killed
job leaves no half file). :func:`load_shards` checks every shard of ``n``
is there, made with one method / hash size / decode mode / flip setting
from the same list of inputs, and rebuilds one
:class:`~mmext.dedup.HashResult` in input order: the merged result equals
hashing everything in one process.

``shard_from_env`` reads the shard of this process from a Slurm array
(``SLURM_ARRAY_TASK_ID`` / ``SLURM_ARRAY_TASK_COUNT``) or torchrun
(``RANK`` / ``WORLD_SIZE``)::

    # Slurm: 16 hashing jobs, then one search job once all succeeded
    ARGS="--train data/big --heldout data/test --out-dir work_dirs/leak"
    jid=$(sbatch --parsable --array=0-15 --cpus-per-task=2 --wrap \
        "python tools/dedup/find_leakage.py $ARGS --shard auto \
         --cache /tmp/hash_cache.sqlite --no-progress")
    sbatch --dependency=afterok:$jid --cpus-per-task=2 --wrap \
        "python tools/dedup/find_leakage.py $ARGS --merge"

    # torchrun: one process per shard on each node (any launcher that
    # sets RANK / WORLD_SIZE), then the merge
    torchrun --nnodes 4 --nproc-per-node 2 ... \
        tools/dedup/find_leakage.py $ARGS --shard auto --workers 1
    python tools/dedup/find_leakage.py $ARGS --merge

Every shard lists the inputs itself (the same sorted folder or config
listing) and hashes its stride; ``<out-dir>`` must be a shared folder. Give
each node its own ``--cache`` (SQLite over NFS locks badly).
"""
import glob
import hashlib
import os
import os.path as osp
import re

import numpy as np

from .hashing import HashResult
from .textio import atomic_write, escape_path, unescape_path

__all__ = [
    'parse_shard', 'shard_from_env', 'shard_file', 'save_shard', 'load_shards'
]

_NAME = re.compile(r'^(?P<name>.+)\.shard-(?P<i>\d+)-of-(?P<n>\d+)\.npz$')


def parse_shard(spec):
    """``'i/n'`` (0-based ``i``) or ``'auto'`` -> ``(i, n)``."""
    if spec == 'auto':
        return shard_from_env()
    match = re.fullmatch(r'(\d+)/(\d+)', str(spec).strip())
    if not match or not int(match[1]) < int(match[2]):
        raise ValueError(f'--shard {spec!r}: expected i/n with 0 <= i < n '
                         '(e.g. 0/4 ... 3/4) or auto')
    return int(match[1]), int(match[2])


def shard_from_env(environ=None):
    """``(i, n)`` of this process in a Slurm array or a torchrun job."""
    env = os.environ if environ is None else environ
    if 'SLURM_ARRAY_TASK_ID' in env and 'SLURM_ARRAY_TASK_COUNT' in env:
        first = int(env.get('SLURM_ARRAY_TASK_MIN', 0))
        i = int(env['SLURM_ARRAY_TASK_ID']) - first
        n = int(env['SLURM_ARRAY_TASK_COUNT'])
    elif 'RANK' in env and 'WORLD_SIZE' in env:
        i, n = int(env['RANK']), int(env['WORLD_SIZE'])
    else:
        raise ValueError('--shard auto: neither SLURM_ARRAY_TASK_ID/'
                         'SLURM_ARRAY_TASK_COUNT (sbatch --array) nor '
                         'RANK/WORLD_SIZE (torchrun) is set; pass --shard '
                         'i/n')
    if not 0 <= i < n:
        raise ValueError(f'--shard auto: task {i} of {n} is out of range '
                         '(use a 0-based --array=0-N)')
    return i, n


def _fingerprint(paths):
    """Digest of the whole input list: shards of different lists must not
    merge."""
    digest = hashlib.sha256()
    for p in paths:
        digest.update(escape_path(p).encode() + b'\n')
    return digest.hexdigest()


def shard_file(folder, name, i, n):
    return osp.join(folder, f'{name}.shard-{i}-of-{n}.npz')


def save_shard(folder, name, all_paths, i, n, hash_fn):
    """Hash shard ``i`` of ``n`` of ``all_paths`` with ``hash_fn(paths) ->
    HashResult`` and save it; returns ``(file, HashResult)``."""
    indices = range(i, len(all_paths), n)
    res = hash_fn([all_paths[k] for k in indices])
    # input index of each hashed / skipped path (both lists keep input
    # order, so one walk assigns them, duplicates included)
    kept, skipped, ki = [], [], 0
    for k in indices:
        if ki < len(res.paths) and res.paths[ki] == str(all_paths[k]):
            kept.append(k)
            ki += 1
        else:
            skipped.append(k)
    os.makedirs(folder, exist_ok=True)
    out = shard_file(folder, name, i, n)
    no_flip = np.zeros((0, res.hashes.shape[1]), np.uint64)
    with atomic_write(out, 'wb') as f:
        np.savez(
            f,
            hashes=res.hashes,
            flipped=no_flip if res.flipped is None else res.flipped,
            has_flip=np.array(res.flipped is not None),
            index=np.array(kept, np.int64),
            paths=np.array([escape_path(p) for p in res.paths], dtype=str),
            skipped_index=np.array(skipped, np.int64),
            skipped_paths=np.array([escape_path(p) for p, _ in res.skipped],
                                   dtype=str),
            skipped_reasons=np.array([r for _, r in res.skipped], dtype=str),
            meta=np.array([
                res.method,
                str(res.hash_size),
                str(res.num_bits),
                str(len(all_paths)),
                _fingerprint(all_paths), res.decode
            ]))
    return out, res


def load_shards(folder, name, expected_paths=None):
    """Merge every ``<name>.shard-*-of-n.npz`` in ``folder`` into one
    HashResult, in input order.

    Args:
        folder (str): Where :func:`save_shard` wrote them.
        name (str): Set name ('train', 'heldout').
        expected_paths (list[str] | None): The input list the shards must
            have been made from (refuses shards of an older listing).

    Raises:
        ValueError: No shard, a missing or extra shard, or shards that
            differ in method, hash size, flip or input list; the message
            names the files.
    """
    files = {}
    for f in glob.glob(
            osp.join(
                glob.escape(folder), f'{glob.escape(name)}'
                '.shard-*-of-*.npz')):
        m = _NAME.match(osp.basename(f))
        if m and m['name'] == name:
            files.setdefault(int(m['n']), {})[int(m['i'])] = f
    if not files:
        raise ValueError(f'no {name}.shard-<i>-of-<n>.npz in {folder}: run '
                         'find_leakage.py --shard i/n for every i first')
    if len(files) > 1:
        raise ValueError(f'{folder} holds {name} shards of several runs '
                         f'(of-{sorted(files)}): remove the stale ones')
    (n, found), = files.items()
    missing = sorted(set(range(n)) - set(found))
    if missing:
        raise ValueError(f'{name} shards {missing} of {n} are missing in '
                         f'{folder} (jobs failed or still running?)')
    parts = []
    for i in range(n):
        with np.load(found[i], allow_pickle=False) as z:
            parts.append({k: z[k] for k in z.files})
    metas = {  # shards older than the decode mode hold 5 entries: exact
        tuple((p['meta'].tolist() + ['exact'])[:6]) + (bool(p['has_flip']), )
        for p in parts
    }
    if len(metas) > 1:
        raise ValueError(f'the {name} shards in {folder} differ in method, '
                         'hash size, decode mode, flip or input list: re-run '
                         'the stale shards')
    (method, hash_size, num_bits, total, digest, decode,
     has_flip) = metas.pop()
    if (expected_paths is not None and digest != _fingerprint(expected_paths)):
        raise ValueError(f'the {name} shards in {folder} were hashed from '
                         f'another list of {total} inputs than the '
                         f'{len(expected_paths)} found now: re-run the '
                         'shards')
    index = np.concatenate([p['index'] for p in parts])
    order = np.argsort(index, kind='stable')
    hashes = np.concatenate([p['hashes'] for p in parts])[order]
    flipped = (
        np.concatenate([p['flipped']
                        for p in parts])[order] if has_flip else None)
    paths = np.concatenate([p['paths'] for p in parts])[order]
    sk_index = np.concatenate([p['skipped_index'] for p in parts])
    sk_order = np.argsort(sk_index, kind='stable')
    sk_paths = np.concatenate([p['skipped_paths'] for p in parts])[sk_order]
    sk_reasons = np.concatenate([p['skipped_reasons']
                                 for p in parts])[sk_order]
    if len(index) + len(sk_index) != int(total):
        raise ValueError(f'the {name} shards in {folder} hold '
                         f'{len(index) + len(sk_index)} inputs, not {total}')
    return HashResult(
        [unescape_path(p) for p in paths.tolist()],
        hashes.astype(np.uint64),
        flipped, [(unescape_path(p), r)
                  for p, r in zip(sk_paths.tolist(), sk_reasons.tolist())],
        method,
        int(hash_size),
        int(num_bits),
        decode=decode)
