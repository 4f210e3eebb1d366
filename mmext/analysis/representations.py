# Copyright (c) mmext contributors. All rights reserved.
"""Record per-layer representations of any mmengine model with forward
hooks.

A *tap* names a submodule (``backbone.layers.3``, ``backbone.layer2``,
``text_layers.5``) and optionally which element of a tuple output to keep
(``co_attention.0:1``); ``backbone.layers.0-11`` expands to twelve taps.
Each recorded output is pooled to one vector per sample: ``cls`` (token 0
of a (B, N, D) sequence), ``mean`` (mean over tokens, or over H x W of a
(B, C, H, W) map). Classifiers, ViLBERT's streams and co-attention blocks go
through the same code.
"""
import difflib
import re
from dataclasses import dataclass

import torch
from mmengine.model import is_model_wrapper

__all__ = ['Tap', 'parse_taps', 'default_taps', 'pool', 'record_layers',
           'collect_representations']

_RANGE = re.compile(r'^(.*?)(\d+)-(\d+)(.*)$')


@dataclass
class Tap:
    """One recorded layer output.

    Attributes:
        name (str): Key of its representations (the spec as written).
        module (str): Submodule path in the model.
        index (int, optional): Element of a tuple/list output.
    """
    name: str
    module: str
    index: int = None


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


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
        paths = [f'{m[1]}{i}{m[4]}' for i in range(int(m[2]), int(m[3]) + 1)
                 ] if m else [path]
        for p in paths:
            name = p + (f':{index}' if index else '')
            taps.append(Tap(name, p, int(index) if index else None))
    if model is not None:
        modules = dict(_unwrap(model).named_modules())
        for tap in taps:
            if tap.module not in modules:
                close = difflib.get_close_matches(tap.module, modules, n=3)
                raise ValueError(
                    f"layer '{tap.module}' is not a submodule of "
                    f'{type(_unwrap(model)).__name__}'
                    + (f'; close: {close}' if close else '') +
                    '; list them with `print(dict(model.named_modules()))`'
                    ' and pass --layers')
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


def pool(out, pooling='cls'):
    """One (B, D) vector per sample from a layer output.

    (B, N, D) sequences: ``cls`` takes token 0, ``mean`` averages tokens;
    (B, C, H, W) maps are averaged over H x W (``cls`` has no meaning there
    and raises); (B, D) is returned as is.
    """
    if out.ndim == 2:
        return out
    if out.ndim == 3:
        return out[:, 0] if pooling == 'cls' else out.mean(1)
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


def _sample_ids(outputs):
    ids = []
    for s in outputs:
        meta = s.metainfo if hasattr(s, 'metainfo') else s
        ids.append(meta.get('img_path', meta.get('sample_idx')))
    return ids


def collect_representations(model,
                            dataloader,
                            taps,
                            pooling='cls',
                            max_samples=None,
                            progress=True,
                            desc='collect'):
    """Run ``model.test_step`` over ``dataloader`` and pool every tap.

    Args:
        model (BaseModel): The model (eval mode is set here).
        dataloader (Iterable): Batches as the model's ``test_step`` takes.
        taps (list[Tap]): From :func:`parse_taps`.
        pooling (str): ``'cls'`` or ``'mean'``. Defaults to ``'cls'``.
        max_samples (int, optional): Stop after this many samples.
        progress (bool): Show a tqdm bar on stderr. Defaults to True.
        desc (str): Bar label.

    Returns:
        tuple[dict[str, Tensor], list]: ``{tap name: (N, D)}`` and the N
        sample ids (image path or ``sample_idx``), to check that two models
        saw the same samples in the same order.
    """
    from tqdm import tqdm
    total = len(dataloader.dataset) if hasattr(dataloader, 'dataset') \
        else None
    if max_samples:
        total = min(total or max_samples, max_samples)
    feats = {t.name: [] for t in taps}
    ids = []
    was_training = model.training
    model.eval()
    bar = tqdm(total=total, desc=desc, unit='img', disable=not progress)
    try:
        with torch.no_grad(), record_layers(model, taps, pooling) as rec:
            for batch in dataloader:
                outputs = model.test_step(batch)
                for name, chunks in rec.take().items():
                    if not chunks:
                        raise RuntimeError(
                            f"layer '{name}' did not run in the forward "
                            'pass; pick layers the model uses')
                    feats[name].append(chunks[-1])
                ids.extend(_sample_ids(outputs))
                bar.update(len(outputs))
                if max_samples and len(ids) >= max_samples:
                    break
    finally:
        bar.close()
        model.train(was_training)
    n = min(len(ids), max_samples) if max_samples else len(ids)
    return {k: torch.cat(v)[:n] for k, v in feats.items()}, ids[:n]
