# Copyright (c) mmext contributors. All rights reserved.
"""Record per-layer representations of any mmengine model with forward
hooks.

A *tap* names a submodule (``backbone.layers.3``, ``backbone.layer2``,
``text_layers.5``) and optionally which element of a tuple output to keep
(``co_attention.0:1``); ``backbone.layers.0-11`` expands to twelve taps.
Default taps are every block of the backbone: ``layers`` (ViT, TRAR-ViT),
``res_layers`` (ResNet, SE-ResNet, R2Gen's extractor) or ``stages``
(TinyViT).
A model whose ``extract_feat(inputs, return_layers=True)`` returns
per-layer outputs (ViLBERT: ``text_layers``, ``vision_layers``,
``coattn_layers``) can also be tapped by the names of those outputs, glob
patterns allowed: ``text.*``, ``vision.3``, ``coattn.*.text``
(:func:`flatten_layer_outputs`). Each recorded output is pooled to one
vector per sample: ``cls`` (token 0 of a (B, N, D) sequence), ``mean``
(mean over tokens, padding excluded when the model gives a mask, or over
H x W of a (B, C, H, W) map). Classifiers, ViLBERT's streams and
co-attention blocks go through the same code.

Pooling rule (``pooling='auto'``, the default; :func:`pooling_kind`):
(B, C, H, W) feature maps are averaged over H x W; (B, N, D) token
sequences give their CLS token (token 0) when the sequence starts with one
(the layer lies in a module with a ``cls_token`` parameter, e.g. ViT /
TRAR-ViT / a ViT extractor with ``with_cls_token=True``, or in a BERT; and
ViLBERT's per-layer outputs, whose token 0 is [CLS] / the global image
token), else the mean over tokens (TinyViT stages, a ViT without CLS);
(B, D) vectors are kept. ``'cls'`` / ``'mean'`` force one kind for token
sequences. A layer run on the V views of a sample (R2Gen's extractor sees
(B x V) images) is averaged over the views. Upstream mmpretrain has no
per-layer representation tool; the platonic-rep code pools one model kind
by one fixed rule.
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
    'flatten_layer_outputs', 'side_names', 'has_layer_outputs', 'pooling_kind',
    'has_cls_token', 'layer_output_net', 'POOLINGS'
]

#: ``--pooling`` choices; ``auto`` follows the module docstring's rule
POOLINGS = ('auto', 'cls', 'mean')

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


def layer_output_net(model):
    """The module whose ``extract_feat`` takes ``return_layers``: the model
    or a wrapped one (``ViLBERTClassifier.vilbert``); None if neither."""
    model = _unwrap(model)
    for net in (model, getattr(model, 'vilbert', None)):
        fn = getattr(net, 'extract_feat', None)
        if fn is not None and 'return_layers' in inspect.signature(
                fn).parameters:
            return net
    return None


def has_layer_outputs(model):
    return layer_output_net(model) is not None


def has_cls_token(model, module_path):
    """Whether the tokens of ``module_path``'s output start with a CLS
    token: some enclosing module holds a ``cls_token`` tensor (mmpretrain
    ViT, TRAR-ViT; None when ``with_cls_token=False``) or is a BERT."""
    model = _unwrap(model)
    parts = module_path.split('.')
    for depth in range(len(parts), -1, -1):
        try:
            mod = model.get_submodule('.'.join(parts[:depth]))
        except AttributeError:
            continue
        if torch.is_tensor(getattr(mod, 'cls_token', None)):
            return True
        if type(mod).__name__.startswith('Bert'):
            return True
    return False


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
    if backbone is not None and isinstance(
            getattr(backbone, 'stages', None), torch.nn.ModuleList):
        return parse_taps([f'backbone.stages.0-{len(backbone.stages) - 1}'])
    raise ValueError(
        f'no default layers for {type(model).__name__}; pass --layers '
        '(module paths such as backbone.layers.0-11)')


def pooling_kind(out, pooling='auto', cls=False):
    """How :func:`pool` reduces ``out``: ``'none'`` (B, D), ``'cls'`` /
    ``'mean'`` (B, N, D), ``'spatial mean'`` (B, C, H, W).

    Args:
        out (Tensor): The layer output.
        pooling (str): ``'auto'``, ``'cls'`` or ``'mean'``.
        cls (bool): The sequence starts with a CLS token (for ``'auto'``).
    """
    if pooling not in POOLINGS:
        raise ValueError(f'pooling must be one of {POOLINGS}, got '
                         f'{pooling!r}')
    if out.ndim == 2:
        return 'none'
    if out.ndim == 3:
        if pooling == 'auto':
            return 'cls' if cls else 'mean'
        return pooling
    if out.ndim == 4:
        if pooling == 'cls':
            raise ValueError('pooling=cls needs a token sequence, but this '
                             'layer outputs a (B, C, H, W) feature map; '
                             'use --pooling auto (mean over H x W)')
        return 'spatial mean'
    raise ValueError(f'cannot pool a layer output of shape '
                     f'{tuple(out.shape)}')


def pool(out, pooling='auto', mask=None, cls=False):
    """One (B, D) vector per sample from a layer output.

    (B, N, D) sequences: ``cls`` takes token 0, ``mean`` averages tokens
    (those with ``mask`` (B, N) non-zero, when given), ``auto`` takes
    token 0 when ``cls`` (the sequence starts with a CLS token) else the
    mean; (B, C, H, W) maps are averaged over H x W (``cls`` has no
    meaning there and raises); (B, D) is returned as is.
    """
    kind = pooling_kind(out, pooling, cls)
    if kind == 'none':
        return out
    if kind == 'spatial mean':
        return out.mean((2, 3))
    if out.ndim == 3:
        if kind == 'cls':
            return out[:, 0]
        if mask is None:
            return out.mean(1)
        w = mask.to(out.dtype).unsqueeze(-1)
        return (out * w).sum(1) / w.sum(1).clamp_min(1)


class record_layers:
    """Context manager: forward hooks that pool each tap's output.

    ``recorder.take()`` returns and clears ``{tap name: [(B, D), ...]}``;
    ``recorder.kinds`` maps each tap to its :func:`pooling_kind`.
    """

    def __init__(self, model, taps, pooling='auto'):
        self.model = _unwrap(model)
        self.taps = taps
        self.pooling = pooling
        self.store = {t.name: [] for t in taps}
        self.kinds = {}
        self._cls = {t.name: has_cls_token(self.model, t.module) for t in taps}
        self._handles = []

    def _hook(self, tap):

        def fn(module, args, out):
            if tap.index is not None:
                out = out[tap.index]
            elif isinstance(out, (tuple, list)):
                raise ValueError(
                    f"layer '{tap.module}' returns a {type(out).__name__} "
                    f'of {len(out)}; pick an element: {tap.module}:0')
            cls = self._cls[tap.name]
            self.kinds[tap.name] = pooling_kind(out, self.pooling, cls)
            self.store[tap.name].append(
                pool(out.detach(), self.pooling, cls=cls).float().cpu())

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
