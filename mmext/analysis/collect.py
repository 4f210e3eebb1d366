# Copyright (c) mmext contributors. All rights reserved.
"""Run a model over a loader and keep one pooled vector per sample and tap.

Module taps record through forward hooks (:class:`record_layers`), output
taps through one ``extract_feat(inputs, return_layers=True)``
(:func:`flatten_layer_outputs`); both are pooled by the rule of
:mod:`mmext.analysis.representations`. Each sample also gets a digest of
its inputs (:func:`~mmext.analysis.measurement.sample_digests`), so two
passes can be checked to have seen the same inputs, not only the same ids.
"""
import fnmatch

import torch

from .measurement import sample_digests
from .representations import (_unwrap, flatten_layer_outputs, layer_output_net,
                              pool, pooling_kind, record_layers)

__all__ = ['collect_representations']


def _output_mask(name, out):
    parts = name.split('.')
    for stream in ('text', 'vision'):
        if stream in parts:
            return out.get(f'{stream}_mask')
    return None


def _batch_ids(batch, count, start):
    samples = batch.get('data_samples') if isinstance(batch, dict) else None
    if not samples:
        return list(range(start, start + count))
    ids = []
    for i, s in enumerate(samples):
        meta = s.metainfo if hasattr(s, 'metainfo') else (s or {})
        ids.append(meta.get('img_path', meta.get('sample_idx', start + i)))
    return ids


def _matched_pairs(batch):
    """Bool mask of the matched image-text pairs of a batch with ITM labels
    (ViLBERT's collate swaps captions; label 1 = matched), else None."""
    inputs = batch.get('inputs') if isinstance(batch, dict) else None
    labels = inputs.get('itm_labels') if isinstance(inputs, dict) else None
    return None if labels is None else torch.as_tensor(labels).bool()


def _forward_outputs(model, batch, taps, pooling, kinds):
    """Run ``extract_feat(return_layers=True)``; pool the output taps (token
    0 is CLS / the global image token in every one of them)."""
    data = _unwrap(model).data_preprocessor(batch, False)
    net = layer_output_net(model)
    out = net.extract_feat(data['inputs'], return_layers=True)
    flat = flatten_layer_outputs(out)
    pooled = {}
    for tap in taps:
        if tap.source != 'output':
            continue
        matches = [n for n in flat if fnmatch.fnmatchcase(n, tap.name)]
        if not matches:
            raise ValueError(f"'{tap.name}' matches no per-layer output of "
                             f'{type(net).__name__}; it has {list(flat)}')
        for n in matches:
            kinds[n] = pooling_kind(flat[n], pooling, cls=True)
            pooled[n] = pool(flat[n].detach(), pooling, _output_mask(n, out),
                             True).float().cpu()
    return pooled


def _run_module_taps(model, batch, rec):
    """Forward ``batch`` for the hooks: ``extract_feat`` when it runs every
    tap (no decoding / head work), else ``test_step``."""
    net = _unwrap(model)
    if callable(getattr(net, 'extract_feat', None)) and \
            hasattr(net, 'data_preprocessor'):
        try:
            net.extract_feat(net.data_preprocessor(batch, False)['inputs'])
        except (TypeError, KeyError):
            rec.take()
        else:
            if all(rec.store[t.name] for t in rec.taps):
                return
            rec.take()
    model.test_step(batch)


def _batch_size(batch, fallback):
    """Samples in a batch: its data samples, else its inputs' rows."""
    if not isinstance(batch, dict):
        return fallback
    if batch.get('data_samples'):
        return len(batch['data_samples'])
    inputs = batch.get('inputs')
    if torch.is_tensor(inputs) or isinstance(inputs, (list, tuple)):
        return len(inputs)
    return fallback


def _merge_views(value, size):
    """(B x V, D) rows of a layer run per view -> (B, D), views averaged."""
    if value.shape[0] == size or value.shape[0] % size:
        return value
    return value.view(size, value.shape[0] // size, -1).mean(1)


def collect_representations(model,
                            dataloader,
                            taps,
                            pooling='auto',
                            max_samples=None,
                            progress=True,
                            desc='collect',
                            details=None):
    """Run the model over ``dataloader`` and pool every tap.

    Module taps record through forward hooks during ``extract_feat`` (or
    ``model.test_step`` when ``extract_feat`` does not reach them); output
    taps (and any module taps with them) during one
    ``extract_feat(inputs, return_layers=True)``. In image-text batches
    with ITM labels only the matched pairs (label 1) are kept.

    Args:
        model (BaseModel): The model (eval mode is set here).
        dataloader (Iterable): Batches as the model's ``test_step`` takes.
        taps (list[Tap]): From :func:`parse_taps`.
        pooling (str): ``'auto'`` (the module rule), ``'cls'`` or
            ``'mean'``. Defaults to ``'auto'``.
        max_samples (int, optional): Stop after this many samples.
        progress (bool): Show a tqdm bar on stderr. Defaults to True.
        desc (str): Bar label.
        details (dict, optional): Filled with ``pooling`` (``{name:
            pooling kind}``) and ``digests`` (one ``{input key: digest}``
            per kept sample).

    Returns:
        tuple[dict[str, Tensor], list]: ``{name: (N, D)}`` (glob taps
        resolved, see :func:`side_names`) and the N sample ids (image path
        or ``sample_idx``), to check two models saw the same samples in the
        same order.
    """
    from tqdm import tqdm
    total = len(dataloader.dataset) if hasattr(dataloader, 'dataset') \
        else None
    if max_samples:
        total = min(total or max_samples, max_samples)
    module_taps = [t for t in taps if t.source == 'module']
    use_outputs = len(module_taps) < len(taps)
    feats, ids, digests, kinds = {}, [], [], {}
    was_training = model.training
    model.eval()
    bar = tqdm(total=total, desc=desc, unit='sample', disable=not progress)
    try:
        with torch.no_grad(), record_layers(model, module_taps,
                                            pooling) as rec:
            for batch in dataloader:
                if use_outputs:
                    pooled = _forward_outputs(model, batch, taps, pooling,
                                              kinds)
                else:
                    _run_module_taps(model, batch, rec)
                    pooled = {}
                for name, chunks in rec.take().items():
                    if not chunks:
                        raise RuntimeError(
                            f"layer '{name}' did not run in the forward "
                            'pass; pick layers the model uses')
                    pooled[name] = chunks[-1]
                count = _batch_size(batch,
                                    next(iter(pooled.values())).shape[0])
                pooled = {k: _merge_views(v, count) for k, v in pooled.items()}
                batch_ids = _batch_ids(batch, count, len(ids))
                batch_digests = sample_digests(batch, count)
                keep = _matched_pairs(batch)
                if keep is not None:  # swapped captions say nothing here
                    pooled = {k: v[keep] for k, v in pooled.items()}
                    batch_ids = [i for i, k in zip(batch_ids, keep) if k]
                    batch_digests = [
                        d for d, k in zip(batch_digests, keep) if k
                    ]
                for name, value in pooled.items():
                    feats.setdefault(name, []).append(value)
                ids.extend(batch_ids)
                digests.extend(batch_digests)
                bar.update(count)
                if max_samples and len(ids) >= max_samples:
                    break
    finally:
        bar.close()
        model.train(was_training)
    n = min(len(ids), max_samples) if max_samples else len(ids)
    if details is not None:
        kinds.update(rec.kinds)
        details.update(
            pooling={k: kinds[k]
                     for k in feats if k in kinds},
            digests=digests[:n])
    return {k: torch.cat(v)[:n] for k, v in feats.items()}, ids[:n]
