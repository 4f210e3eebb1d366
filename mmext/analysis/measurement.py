# Copyright (c) mmext contributors. All rights reserved.
"""Deterministic data for representation measurements.

An alignment score compares two passes over "the same" samples, so the
loader must give the same inputs every time. Test pipelines of pretraining
configs are not deterministic: ViLBERT's collate swaps captions for ITM
(``itm_prob``), ``TokenizeCaption`` masks tokens for MLM (``mlm_prob``
defaults to 0.15), ``MaskRegions`` / ``RandomPatchMask`` mask regions and
patches. :func:`measurement_loader_cfg` switches all of them off in a copy
of the loader config; :func:`sample_digests` and
:func:`input_differences` say what still differs when two passes disagree.
mmengine and mmpretrain have no such mode (their test loaders are used as
configured).
"""
import copy
import hashlib

import torch

__all__ = [
    'measurement_loader_cfg', 'sample_digests', 'input_differences',
    'RANDOM_SWITCHES'
]

#: transform type -> (argument, value that turns its randomness off)
RANDOM_SWITCHES = {
    'TokenizeCaption': ('mlm_prob', 0),
    'MaskRegions': ('prob', 0),
    'RandomPatchMask': ('ratio', 0),
    'RandomFlip': ('prob', 0),
}


def _short_type(t):
    return str(t).rsplit('.', 1)[-1] if not callable(t) else t.__name__


def _switch_transforms(node, changes, where):
    """Walk a dataset config (wrappers, nested ``transforms``) in place."""
    if isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            _switch_transforms(item, changes, f'{where}[{i}]')
        return
    if not isinstance(node, dict):
        return
    kind = _short_type(node.get('type', ''))
    if kind in RANDOM_SWITCHES:
        arg, off = RANDOM_SWITCHES[kind]
        if node.get(arg, None) != off:
            node[arg] = off
            changes.append(f'{kind}.{arg}={off}')
    elif kind.startswith('Random'):
        changes.append(f'{kind} left on (no switch known)')
    for key, val in node.items():
        if key in ('pipeline', 'transforms', 'dataset', 'datasets'):
            _switch_transforms(val, changes, f'{where}.{key}')


def measurement_loader_cfg(loader_cfg, batch_size=None):
    """A copy of a ``*_dataloader`` config for measurements.

    Unshuffled, no persistent workers / pinned memory, ITM caption swaps
    off (``collate_fn.itm_prob=0``) and the random transforms of
    :data:`RANDOM_SWITCHES` off.

    Args:
        loader_cfg (dict): The loader config.
        batch_size (int, optional): Override its batch size.

    Returns:
        tuple[dict, list[str]]: The config and what was switched off (for
        the record; ``'<Type> left on'`` marks a random transform with no
        known switch).
    """
    cfg = copy.deepcopy(loader_cfg)
    cfg['sampler'] = dict(type='DefaultSampler', shuffle=False)
    cfg['persistent_workers'] = False
    cfg['pin_memory'] = False
    if batch_size:
        cfg['batch_size'] = batch_size
    changes = []
    collate = cfg.get('collate_fn')
    if isinstance(collate, dict) and ('itm_prob' in collate or _short_type(
            collate.get('type', '')) == 'vilbert_collate'):
        if collate.get('itm_prob', 0.5) != 0:
            changes.append('vilbert_collate.itm_prob=0')
        collate['itm_prob'] = 0
    _switch_transforms(cfg.get('dataset'), changes, 'dataset')
    return cfg, list(dict.fromkeys(changes))


def _digest(t):
    t = t.detach().cpu().contiguous()
    return hashlib.blake2b(t.numpy().tobytes(), digest_size=6).hexdigest()


def sample_digests(batch, size):
    """One ``{input key: digest}`` per sample of a collated batch.

    Tensors of the ``inputs`` dict (or the list / tensor of images) whose
    first dimension is the batch size are hashed row by row; padded token
    ids are hashed with their padding (both passes pad alike).
    """
    inputs = batch.get('inputs') if isinstance(batch, dict) else batch
    if isinstance(inputs, dict):
        items = inputs.items()
    else:
        items = [('img', inputs)]
    out = [{} for _ in range(size)]
    for key, val in items:
        is_rows = isinstance(val, (list, tuple)) or (torch.is_tensor(val)
                                                     and val.ndim > 0)
        if not is_rows or len(val) != size:
            continue
        for i, row in enumerate(val):
            if torch.is_tensor(row):
                out[i][key] = _digest(row)
    return out


def input_differences(ids, digests, digests2, limit=3):
    """What differs between two passes' inputs of the same samples.

    Returns:
        list[str]: e.g. ``["#3 (a.jpg): input_ids"]``, at most ``limit``
        samples, plus a count of the rest; empty when all agree.
    """
    found = []
    for i, (d1, d2) in enumerate(zip(digests, digests2)):
        keys = sorted(k for k in set(d1) | set(d2) if d1.get(k) != d2.get(k))
        if keys:
            found.append(f'#{i} ({ids[i]}): {", ".join(keys)}')
    if len(found) > limit:
        found = found[:limit] + [f'and {len(found) - limit} more samples']
    return found
