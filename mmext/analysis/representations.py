# Copyright (c) mmext contributors. All rights reserved.
"""Record per-layer representations of any mmengine model with forward
hooks.

A *tap* names a submodule (``backbone.layers.3``, ``backbone.layer2``,
``text_layers.5``) and optionally which element of a tuple output to keep
(``co_attention.0:1``); ``backbone.layers.0-11`` expands to twelve taps.
A model whose ``extract_feat(inputs, return_layers=True)`` returns
per-layer outputs (ViLBERT: ``text_layers``, ``vision_layers``,
``coattn_layers``) can also be tapped by the names of those outputs, glob
patterns allowed: ``text.*``, ``vision.3``, ``coattn.*.text``
(:func:`flatten_layer_outputs`). Each recorded output is pooled to one
vector per sample: ``cls`` (token 0 of a (B, N, D) sequence), ``mean``
(mean over tokens, padding excluded when the model gives a mask, or over
H x W of a (B, C, H, W) map). Classifiers, ViLBERT's streams and
co-attention blocks go through the same code.
"""
import difflib
import fnmatch
import inspect
import re
from dataclasses import dataclass

import torch
from mmengine.model import is_model_wrapper

__all__ = [
    'Tap', 'parse_taps', 'default_taps', 'pool', 'record_layers',
    'flatten_layer_outputs', 'side_names', 'has_layer_outputs',
    'collect_representations'
]

_RANGE = re.compile(r'^(.*?)(\d+)-(\d+)(.*)$')


@dataclass
class Tap:
    """One recorded layer output.

    Attributes:
        name (str): Key of its representations (the spec as written; a
            glob pattern for an ``output`` tap).
        module (str): Submodule path in the model (None for ``output``).
        index (int, optional): Element of a tuple/list output.
        source (str): ``'module'`` (forward hook) or ``'output'`` (a name
            in the model's per-layer outputs).
    """
    name: str
    module: str = None
    index: int = None
    source: str = 'module'


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


def has_layer_outputs(model):
    fn = getattr(_unwrap(model), 'extract_feat', None)
    return fn is not None and 'return_layers' in inspect.signature(
        fn).parameters


def parse_taps(specs, model=None):
    """Tap specs -> :class:`Tap` list, ranges expanded, modules checked.

    Args:
        specs (Sequence[str]): e.g. ``['backbone.layers.0-11']``,
            ``['co_attention.0-2:0']`` (text part of tuple outputs).
        model (nn.Module, optional): Check every module exists.

    Returns:
        list[Tap]
    """
    taps = []
    for spec in specs:
        path, _, index = spec.partition(':')
        m = _RANGE.match(path)
        paths = [f'{m[1]}{i}{m[4]}'
                 for i in range(int(m[2]),
                                int(m[3]) + 1)] if m else [path]
        for p in paths:
            name = p + (f':{index}' if index else '')
            taps.append(Tap(name, p, int(index) if index else None))
    if model is None:
        return taps
    modules = dict(_unwrap(model).named_modules())
    outputs = has_layer_outputs(model)
    for tap in taps:
        if tap.module in modules:
            continue
        if outputs and tap.index is None:
            tap.source, tap.module = 'output', None  # checked when run
            continue
        close = difflib.get_close_matches(tap.module, modules, n=3)
        raise ValueError(
            f"layer '{tap.module}' is not a submodule of "
            f'{type(_unwrap(model)).__name__}' +
            (f'; close: {close}' if close else '') +
            '; list them with `print(dict(model.named_modules()))` and '
            'pass --layers')
    return taps


def default_taps(model):
    """Every block of the backbone: ``backbone.layers.{i}`` (mmpretrain ViT
    family) or ``backbone.layer{i}`` (ResNet stages)."""
    model = _unwrap(model)
    backbone = getattr(model, 'backbone', None)
    if backbone is not None and isinstance(
            getattr(backbone, 'layers', None), torch.nn.ModuleList):
        return parse_taps([f'backbone.layers.0-{len(backbone.layers) - 1}'])
    if backbone is not None and getattr(backbone, 'res_layers', None):
        return parse_taps([f'backbone.{n}' for n in backbone.res_layers])
    raise ValueError(
        f'no default layers for {type(model).__name__}; pass --layers '
        '(module paths such as backbone.layers.0-11)')


def pool(out, pooling='cls', mask=None):
    """One (B, D) vector per sample from a layer output.

    (B, N, D) sequences: ``cls`` takes token 0, ``mean`` averages tokens
    (those with ``mask`` (B, N) non-zero, when given); (B, C, H, W) maps
    are averaged over H x W (``cls`` has no meaning there and raises);
    (B, D) is returned as is.
    """
    if out.ndim == 2:
        return out
    if out.ndim == 3:
        if pooling == 'cls':
            return out[:, 0]
        if mask is None:
            return out.mean(1)
        w = mask.to(out.dtype).unsqueeze(-1)
        return (out * w).sum(1) / w.sum(1).clamp_min(1)
    if out.ndim == 4:
        if pooling == 'cls':
            raise ValueError('pooling=cls needs a token sequence, but this '
                             'layer outputs a (B, C, H, W) feature map; '
                             'use --pooling mean')
        return out.mean((2, 3))
    raise ValueError(f'cannot pool a layer output of shape '
                     f'{tuple(out.shape)}')


class record_layers:
    """Context manager: forward hooks that pool each tap's output.

    ``recorder.take()`` returns and clears ``{tap name: [(B, D), ...]}``.
    """

    def __init__(self, model, taps, pooling='cls'):
        self.model = _unwrap(model)
        self.taps = taps
        self.pooling = pooling
        self.store = {t.name: [] for t in taps}
        self._handles = []

    def _hook(self, tap):

        def fn(module, args, out):
            if tap.index is not None:
                out = out[tap.index]
            elif isinstance(out, (tuple, list)):
                raise ValueError(
                    f"layer '{tap.module}' returns a {type(out).__name__} "
                    f'of {len(out)}; pick an element: {tap.module}:0')
            self.store[tap.name].append(
                pool(out.detach(), self.pooling).float().cpu())

        return fn

    def __enter__(self):
        for tap in self.taps:
            module = self.model.get_submodule(tap.module)
            self._handles.append(module.register_forward_hook(self._hook(tap)))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []

    def take(self):
        out = self.store
        self.store = {t.name: [] for t in self.taps}
        return out


def flatten_layer_outputs(out):
    """``extract_feat(..., return_layers=True)`` -> ``{name: tensor}``.

    ``{x}_layers`` lists give ``x.{i}`` (a dict entry ``x.{i}.{key}`` per
    tensor in it), ``embeddings`` gives ``embeddings.{key}``; e.g. ViLBERT's
    ``text.0``, ``vision.11``, ``coattn.2.text``.
    """
    flat = {}
    for key, val in out.get('embeddings', {}).items():
        flat[f'embeddings.{key}'] = val
    for key, val in out.items():
        if not (key.endswith('_layers') and isinstance(val, list)):
            continue
        stem = key[:-len('_layers')]
        for i, item in enumerate(val):
            if isinstance(item, dict):
                for sub, t in item.items():
                    if torch.is_tensor(t):
                        flat[f'{stem}.{i}.{sub}'] = t
            else:
                flat[f'{stem}.{i}'] = item
    return flat


def _output_mask(name, out):
    parts = name.split('.')
    for stream in ('text', 'vision'):
        if stream in parts:
            return out.get(f'{stream}_mask')
    return None


def side_names(taps, names):
    """Resolved names of ``taps`` among the recorded ``names``, in tap
    order (a glob ``output`` tap gives every match, in model order)."""
    picked = []
    for tap in taps:
        if tap.source == 'module':
            matches = [tap.name]
        else:
            matches = [n for n in names if fnmatch.fnmatchcase(n, tap.name)]
        picked += [m for m in matches if m not in picked]
    return picked


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


def _forward_outputs(model, batch, taps, pooling):
    """Run ``extract_feat(return_layers=True)``; pool the output taps."""
    net = _unwrap(model)
    data = net.data_preprocessor(batch, False)
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
            pooled[n] = pool(flat[n].detach(), pooling,
                             _output_mask(n, out)).float().cpu()
    return pooled


def collect_representations(model,
                            dataloader,
                            taps,
                            pooling='cls',
                            max_samples=None,
                            progress=True,
                            desc='collect'):
    """Run the model over ``dataloader`` and pool every tap.

    Module taps record through forward hooks during ``model.test_step``;
    output taps (and any module taps with them) during one
    ``extract_feat(inputs, return_layers=True)``. In image-text batches
    with ITM labels only the matched pairs (label 1) are kept.

    Args:
        model (BaseModel): The model (eval mode is set here).
        dataloader (Iterable): Batches as the model's ``test_step`` takes.
        taps (list[Tap]): From :func:`parse_taps`.
        pooling (str): ``'cls'`` or ``'mean'``. Defaults to ``'cls'``.
        max_samples (int, optional): Stop after this many samples.
        progress (bool): Show a tqdm bar on stderr. Defaults to True.
        desc (str): Bar label.

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
    feats, ids = {}, []
    was_training = model.training
    model.eval()
    bar = tqdm(total=total, desc=desc, unit='sample', disable=not progress)
    try:
        with torch.no_grad(), record_layers(model, module_taps,
                                            pooling) as rec:
            for batch in dataloader:
                if use_outputs:
                    pooled = _forward_outputs(model, batch, taps, pooling)
                else:
                    model.test_step(batch)
                    pooled = {}
                for name, chunks in rec.take().items():
                    if not chunks:
                        raise RuntimeError(
                            f"layer '{name}' did not run in the forward "
                            'pass; pick layers the model uses')
                    pooled[name] = chunks[-1]
                count = next(iter(pooled.values())).shape[0]
                batch_ids = _batch_ids(batch, count, len(ids))
                keep = _matched_pairs(batch)
                if keep is not None:  # swapped captions say nothing here
                    pooled = {k: v[keep] for k, v in pooled.items()}
                    batch_ids = [i for i, k in zip(batch_ids, keep) if k]
                for name, value in pooled.items():
                    feats.setdefault(name, []).append(value)
                ids.extend(batch_ids)
                bar.update(count)
                if max_samples and len(ids) >= max_samples:
                    break
    finally:
        bar.close()
        model.train(was_training)
    n = min(len(ids), max_samples) if max_samples else len(ids)
    return {k: torch.cat(v)[:n] for k, v in feats.items()}, ids[:n]
