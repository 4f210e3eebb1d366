# Copyright (c) mmext contributors. All rights reserved.
"""Test-set leakage check: training images that duplicate held-out images.

:func:`find_leakage` hashes both sets (perceptual hash, flip-aware, cached),
finds every train / held-out pair within a Hamming threshold and writes
:data:`~mmext.dedup.leakage_report.LEAKAGE_OUTPUTS` into ``out_dir``, all or
none: ``pairs.csv``, ``pairs.json``, ``report.html`` (self-contained),
``pairs.png`` (contact sheet), ``exclude.txt`` (training images to drop,
relative to the training set's ``data_root``, the file ``ExcludeImages`` reads)
and ``skipped.csv`` (every input left out, with the reason: image-named folder
entries that are not images, symlink loops and hidden files,
:func:`~mmext.dedup.inputs.scan_image_folder`; files that cannot be decoded or
exceed the pixel limit, :func:`~mmext.dedup.decode.load_image`). File names
that are not UTF-8 or hold a newline are escaped (:mod:`mmext.dedup.textio`).

``stage='geometric'`` (``--stage geometric``) adds a second stage after
the hashes: ORB features, candidate pairs from an LSH index and RANSAC
verification (:mod:`mmext.dedup.geometric`) find crops, rotations, borders
and partial overlaps; its pairs join the hash pairs in every output (with
a ``stage`` column and their evidence), the hash pairs stay as they were.

``decode='fast'`` (``--decode fast``) decodes JPEGs downscaled in the DCT
domain (:mod:`mmext.dedup.decode`): several times faster hashing, hashes a
few bits off imagehash's (the threshold and the measured effect:
:mod:`mmext.dedup.search`).

Collections larger than one machine: hash with ``shard='i/n'`` (or
``'auto'`` in a Slurm array / torchrun) for every ``i``, then search once
with ``merge=True`` (:mod:`mmext.dedup.shards`).

CLI: ``tools/dedup/find_leakage.py`` (``mim run mmext find_leakage``).

Example:
    >>> meta = find_leakage(  # doctest: +SKIP
    ...     'data/flowers102/jpg', 'data/flowers17/jpg',
    ...     'work_dirs/leak_102_vs_17')
    >>> meta['pairs'], meta['threshold']  # doctest: +SKIP
"""
import datetime
import os
import os.path as osp
import time

from .decode import DECODE_MODES
from .geometric import find_geometric_pairs
from .geometric_features import (extract_features, load_feature_shards,
                                 save_feature_shard)
from .hashing import hash_images
from .inputs import resolve_image_set
from .leakage_report import LEAKAGE_OUTPUTS, write_leakage_outputs
from .search import default_threshold, find_cross_set_duplicates
from .shards import load_shards, parse_shard, save_shard
from .textio import escape_path

__all__ = ['find_leakage', 'LeakageCheckError', 'SET_NAMES', 'STAGES']

#: Names of the training and held-out sets in the outputs.
SET_NAMES = ('train', 'heldout')
#: ``'hash'``: perceptual hashes only; ``'geometric'``: hashes, then
#: local features + RANSAC.
STAGES = ('hash', 'geometric')


class LeakageCheckError(ValueError):
    """A leakage check that cannot run as asked (the message says why and
    what to change)."""


def _parse_shard(shard):
    if not shard or isinstance(shard, tuple):
        return shard or None
    try:
        return parse_shard(shard)
    except ValueError as e:
        raise LeakageCheckError(str(e)) from None


def _python_call(**kwargs):
    """How a Python caller ran the check, for the outputs' ``command``."""
    shown = ', '.join(f'{k}={v!r}' for k, v in kwargs.items())
    return f'find_leakage({shown})'


def _hash_shard(hash_dir, shard, sets, kwargs, feature_kwargs=None):
    for name, paths in zip(SET_NAMES, sets):
        out, res = save_shard(hash_dir, name, paths, *shard,
                              lambda p: hash_images(p, **kwargs))
        print(f'{name} shard {shard[0]}/{shard[1]}: {len(res)} hashed, '
              f'{len(res.skipped)} skipped -> {escape_path(out)}')
        if feature_kwargs is not None:
            out, res = save_feature_shard(
                osp.join(osp.dirname(hash_dir), 'features'), name, paths,
                *shard, lambda p: extract_features(p, **feature_kwargs))
            print(f'{name} shard {shard[0]}/{shard[1]}: features of '
                  f'{len(res)}, {len(res.skipped)} skipped -> '
                  f'{escape_path(out)}')
    return {'shard': list(shard)}


def _geometric_stage(out_dir, sets, merge, feature_kwargs, hash_pairs,
                     geometric_cfg, workers, progress):
    """Features of both sets (extracted or merged from shards) and the
    geometric pairs the hash stage did not find."""
    if merge:
        try:
            train_f, held_f = (load_feature_shards(
                osp.join(out_dir, 'features'), name, paths)
                               for name, paths in zip(SET_NAMES, sets))
        except ValueError as e:
            raise LeakageCheckError(str(e)) from None
    else:
        train_f, held_f = (extract_features(
            paths, desc=f'orb {name}', **feature_kwargs)
                           for name, paths in zip(SET_NAMES, sets))
    found = {(p.query_path, p.ref_path) for p in hash_pairs}
    pairs = find_geometric_pairs(
        train_f,
        held_f,
        workers=workers,
        progress=progress,
        exclude=found,
        **(geometric_cfg or {}))
    return train_f, held_f, pairs


def _merge_shards(hash_dir, sets, method, hash_size, flip, decode):
    try:
        train, held = (load_shards(hash_dir, name, paths)
                       for name, paths in zip(SET_NAMES, sets))
    except ValueError as e:
        raise LeakageCheckError(str(e)) from None
    for res in (train, held):
        if (res.method, res.hash_size, res.flipped
                is not None, res.decode) != (method, hash_size, flip, decode):
            raise LeakageCheckError(
                f'the shards in {hash_dir} are {res.method} hash_size '
                f'{res.hash_size} flip {res.flipped is not None} decode '
                f'{res.decode}: pass the same --method, --hash-size, '
                '--no-flip and --decode as the --shard runs')
    return train, held


def find_leakage(train,
                 heldout,
                 out_dir,
                 train_split='train_dataloader',
                 heldout_split='test_dataloader',
                 method='phash',
                 hash_size=8,
                 threshold=None,
                 flip=True,
                 workers=2,
                 cache_file=None,
                 use_cache=True,
                 progress=True,
                 shard=None,
                 merge=False,
                 cfg_options=None,
                 stage='hash',
                 geometric_cfg=None,
                 command=None,
                 decode='exact'):
    """Find training images that duplicate held-out images; write the
    evidence and the exclude file into ``out_dir``.

    Args:
        train (str): Training images: a folder or a ``.py`` config.
        heldout (str): Held-out (test / val) images: a folder or a config.
        out_dir (str): Output folder (created if missing).
        train_split (str): Dataloader of ``train`` when it is a config.
            Defaults to 'train_dataloader'.
        heldout_split (str): Dataloader of ``heldout`` when it is a
            config. Defaults to 'test_dataloader'.
        method (str): One of :data:`mmext.dedup.METHODS`. Defaults to
            'phash'.
        hash_size (int): imagehash ``hash_size``. Defaults to 8.
        threshold (int, optional): Max Hamming distance. Defaults to None
            (measured per method, 10 for 64-bit phash).
        flip (bool): Also match mirrored copies. Defaults to True.
        workers (int): Hashing / search processes (0: in this process).
            Defaults to 2.
        cache_file (str, optional): Hash cache. Defaults to None
            (``<out_dir>/hash_cache.sqlite``).
        use_cache (bool): Read and write the hash cache. Defaults to True.
        progress (bool): Show progress bars. Defaults to True.
        shard (str | tuple[int, int], optional): ``'i/n'``, ``(i, n)`` or
            ``'auto'``: only hash shard ``i`` (0-based) of ``n`` of both
            sets into ``<out_dir>/hashes``, no search. Defaults to None.
        merge (bool): Search the shards in ``<out_dir>/hashes`` instead of
            hashing. Defaults to False.
        cfg_options (dict, optional): Overrides for config inputs (applied
            to both). Defaults to None.
        stage (str): 'hash' or 'geometric' (hashes, then local features
            and RANSAC, :mod:`mmext.dedup.geometric`). Defaults to 'hash'.
        geometric_cfg (dict, optional): Arguments of
            :func:`~mmext.dedup.geometric.find_geometric_pairs` (``rule``,
            ``top_k``, ...). Defaults to None.
        command (str, optional): The command line recorded in the outputs.
            Defaults to None (this Python call is recorded).
        decode (str): 'exact' (imagehash-identical hashes) or 'fast' (JPEGs
            decoded downscaled, :func:`~mmext.dedup.hash_images`).
            Defaults to 'exact'.

    Returns:
        dict: The run summary written to ``pairs.json`` (``pairs``,
        ``threshold``, ``train_hashed``, ...), or ``{'shard': [i, n]}``
        for a shard run.

    Raises:
        LeakageCheckError: Bad shard settings, an empty set, or shards
            that do not match this run.
    """
    if command is None:
        command = _python_call(
            train=train,
            heldout=heldout,
            out_dir=out_dir,
            method=method,
            hash_size=hash_size,
            threshold=threshold,
            flip=flip,
            shard=shard,
            merge=merge,
            **({} if stage == 'hash' else dict(stage=stage)),
            **({} if decode == 'exact' else dict(decode=decode)))
    if stage not in STAGES:
        raise LeakageCheckError(f'--stage {stage!r}: choose one of '
                                f'{", ".join(STAGES)}')
    if decode not in DECODE_MODES:
        raise LeakageCheckError(f'--decode {decode!r}: choose one of '
                                f'{", ".join(DECODE_MODES)}')
    if shard and merge:
        raise LeakageCheckError('--shard hashes one shard, --merge searches '
                                'all of them: run them as separate steps')
    shard = _parse_shard(shard)
    if threshold is None:
        threshold = default_threshold(method, hash_size)
    os.makedirs(out_dir, exist_ok=True)
    cache = (cache_file
             or osp.join(out_dir, 'hash_cache.sqlite')) if use_cache else None
    train_set = resolve_image_set(train, train_split, cfg_options)
    held_set = resolve_image_set(heldout, heldout_split, cfg_options)
    train_paths, train_root = train_set.paths, train_set.root
    held_paths = held_set.paths
    for spec, listing in ((train, train_set), (heldout, held_set)):
        if not listing.paths:
            left = '; '.join(f'{escape_path(p)}: {r}'
                             for p, r in listing.skipped[:3])
            raise LeakageCheckError(
                f'no images found in {spec} (extensions or split wrong?)' +
                (f'; left out: {left}' if left else ''))

    start = time.time()
    kwargs = dict(
        method=method,
        hash_size=hash_size,
        flip=flip,
        workers=workers,
        cache_file=cache,
        progress=progress,
        decode=decode)
    hash_dir = osp.join(out_dir, 'hashes')
    sets = (train_paths, held_paths)
    feature_kwargs = None
    if stage == 'geometric':
        feature_kwargs = dict(
            workers=workers, cache_file=cache, progress=progress)
    if shard is not None:
        return _hash_shard(hash_dir, shard, sets, kwargs, feature_kwargs)
    if merge:
        train_res, held_res = _merge_shards(hash_dir, sets, method, hash_size,
                                            flip, decode)
    else:
        train_res = hash_images(train_paths, **kwargs)
        held_res = hash_images(held_paths, **kwargs)
    pairs = find_cross_set_duplicates(
        train_res, held_res, threshold=threshold, workers=workers)
    hash_pairs = len(pairs)

    # entries the listing left out come first, then the undecodable ones
    skipped = {
        name: listing.skipped + res.skipped
        for name, listing, res in zip(SET_NAMES, (train_set,
                                                  held_set), (train_res,
                                                              held_res))
    }
    if stage == 'geometric':
        features = _geometric_stage(out_dir, sets, merge, feature_kwargs,
                                    pairs, geometric_cfg, workers, progress)
        pairs = pairs + features[2]
        for name, feats in zip(SET_NAMES, features[:2]):
            known = {p for p, _ in skipped[name]}
            skipped[name] += [(p, f'geometric stage: {r}')
                              for p, r in feats.skipped if p not in known]
    meta = {
        'command': command,
        'date': datetime.datetime.now().isoformat(timespec='seconds'),
        'method': method,
        'hash_size': hash_size,
        'threshold': threshold,
        'flip': flip,
        'decode': decode,
        'train': train,
        'heldout': heldout,
        'train_data_root': train_root,
        'train_hashed': len(train_res),
        'heldout_hashed': len(held_res),
        'skipped': sum(map(len, skipped.values())),
        'pairs': len(pairs),
    }
    if stage == 'geometric':
        meta.update(
            stage=stage,
            hash_pairs=hash_pairs,
            geometric_pairs=len(pairs) - hash_pairs,
            geometric_cfg=dict(geometric_cfg or {}))
    comments = [
        'Training images that duplicate held-out images (mmext '
        'find_leakage).',
        f'command: {command}',
        f'date: {meta["date"]}',
        f'method: {method} hash_size {hash_size} threshold {threshold} '
        f'flip {flip}' + ('' if decode == 'exact' else f' decode {decode}') +
        (' + geometric stage (ORB + RANSAC)' if stage == 'geometric' else ''),
        f'held-out: {heldout}',
        f'paths relative to: {train_root}',
    ]
    excluded = write_leakage_outputs(
        out_dir,
        pairs,
        skipped,
        meta, [p.query_path for p in pairs],
        train_root,
        comments,
        SET_NAMES,
        stages=stage == 'geometric')
    num_skipped = meta['skipped']
    print(f'{len(train_res)} train / {len(held_res)} held-out hashed, '
          f'{num_skipped} skipped, {len(pairs)} pairs' +
          (f' ({hash_pairs} hash, {len(pairs) - hash_pairs} geometric)'
           if stage == 'geometric' else '') + f', {len(excluded)} '
          f'excluded (threshold {threshold}, {method}, ' +
          ('' if decode == 'exact' else f'{decode} decode, ') +
          f'{time.time() - start:.1f} s; cached '
          f'{train_res.num_cached + held_res.num_cached})')
    shown = escape_path(out_dir)
    if num_skipped:
        print(f'skipped files and reasons: {shown}/skipped.csv')
    print(f'outputs: {shown}/{{{",".join(LEAKAGE_OUTPUTS)}}}')
    return meta
