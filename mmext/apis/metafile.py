# Copyright (c) mmext contributors. All rights reserved.
"""Computed ``Parameters`` / ``FLOPs`` for mmpretrain-format metafiles.

mmpretrain's metafiles carry numbers typed in by hand; here they are counted
from the configs the way ``mim run mmpretrain get_flops`` counts them
(``mmpretrain.apis.get_model`` and mmengine's ``get_model_complexity_info``
on ``extract_feat`` at the config's test input size), so ``mim search mmext``
shows what the configs build. Published numbers belong to the papers and go
under ``Paper Results`` in a collection, never under a model's ``Results``.
"""
import os.path as osp
import re
import time
from pathlib import Path

import torch
import yaml
from mmengine.config import Config

from mmext.analysis.complexity import _hw, config_input_size, sdpa_flop_jit
from mmext.utils.config import iter_config

__all__ = [
    'config_input_size', 'count_complexity', 'sdpa_flop_jit',
    'update_metafile', 'update_model_index', 'model_families',
    'weight_origins', 'add_weight_origins'
]

# config folders that hold no models (search spaces, bases)
NON_MODEL_DIRS = ('_base_', 'hpo')


def _count(module, inputs, count_sdpa):
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(module, inputs)
    if count_sdpa:
        analyzer.set_op_handle('aten::scaled_dot_product_attention',
                               sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return int(analyzer.total())


def _find_backbone(model_cfg):
    """The first ``backbone`` config inside a model config (depth first)."""
    return next(
        (value['backbone'] for _, _, _, value in iter_config(model_cfg) if
         isinstance(value, dict) and isinstance(value.get('backbone'), dict)),
        None)


def count_complexity(config, input_size=None, count_sdpa=True):
    """Count parameters and FLOPs as ``get_flops`` does.

    Builds the model with ``mmpretrain.apis.get_model`` (the mmpretrain
    scope, as a user would) and counts ``extract_feat`` on one image with
    mmengine's FlopAnalyzer. A model without an image ``extract_feat``
    (report generators) counts its ``backbone``. A model that cannot be
    built here (it needs data or weights that are not present, e.g. the
    report vocabulary or a BERT folder) counts its ``backbone`` config alone
    and gives no ``params``.

    Args:
        config (str | Config): Config path or loaded config.
        input_size (int | tuple[int, int], optional): Image size; defaults
            to :func:`config_input_size`. Defaults to None.
        count_sdpa (bool): Count fused attention (:func:`sdpa_flop_jit`);
            False reproduces ``get_flops``, which skips it. Defaults to True.

    Returns:
        dict: ``flops`` (int, or None when the model cannot be traced),
        ``params`` (int: the whole model, or None), ``flops_str``,
        ``params_str`` (mmengine's formatting, as printed by ``get_flops``),
        ``input_shape``, ``flops_of`` (what was counted) and ``note`` (why
        something is missing, or None).
    """
    from mmengine.analysis.print_helper import _format_size
    from mmpretrain.apis import get_model
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    h, w = _hw(input_size) if input_size else config_input_size(cfg)
    note = None
    try:
        model = get_model(cfg)
    except (FileNotFoundError, ValueError) as e:
        backbone = _find_backbone(cfg.model)
        if backbone is None:
            raise
        from mmengine.registry import DefaultScope

        from mmext.registry import MODELS
        with DefaultScope.overwrite_default_scope('mmext'):
            model = MODELS.build(backbone)
        params = None
        target, flops_of = model, 'backbone'
        note = ('backbone only; the full model needs '
                f'{str(e).splitlines()[0][:120]}')
    else:
        params = sum(p.numel() for p in model.parameters())
        if hasattr(model, 'extract_feat') and hasattr(model, 'head'):
            target, flops_of = model, 'extract_feat'
            model.forward = model.extract_feat
        elif hasattr(model, 'backbone'):
            target, flops_of = model.backbone, 'backbone'
        else:
            raise NotImplementedError(
                f'count_complexity: {type(model).__name__} has neither '
                'extract_feat nor a backbone to count')
    model.eval()
    inputs = (torch.randn(1, 3, h, w), )
    try:
        flops = _count(target, inputs, count_sdpa)
    except RuntimeError as e:  # an op torch.jit.trace cannot record
        flops = None
        note = ('FLOPs not counted: torch.jit.trace of the model failed '
                f'({str(e).splitlines()[0][:80]}), as it does in '
                "mmpretrain's get_flops")
    return dict(
        flops=flops,
        params=None if params is None else int(params),
        flops_str=None if flops is None else _format_size(flops),
        params_str=None if params is None else _format_size(params),
        input_shape=(3, h, w),
        flops_of=flops_of,
        note=note)


def weight_origins(cfg):
    """Where the weights a config starts from come from, one line.

    Every ``init_cfg=dict(type='Pretrained')`` checkpoint, ``load_from``
    and ViLBERT BERT folder the config names, each with the released
    source's URL from :data:`~mmext.utils.pretrained_sources.
    PRETRAINED_SOURCES` (or its recipe when there is no URL). None for a
    model trained from scratch. ``mim search mmext`` shows it as the
    ``weights_origin`` column.

    Args:
        cfg (str | Config): The config.

    Returns:
        str | None
    """
    from mmext.utils.pretrained_sources import PRETRAINED_SOURCES
    cfg = Config.fromfile(cfg) if isinstance(cfg, str) else cfg
    files = [cfg.get('load_from')]
    for _, _, key, value in iter_config(cfg._cfg_dict.get('model', {})):
        if isinstance(value, dict) and value.get('type') == 'Pretrained':
            files.append(value.get('checkpoint'))
        elif key == 'text' and isinstance(value, dict):
            files.append(value.get('folder'))
    rows = []
    for f in dict.fromkeys(f for f in files if f):
        name = osp.basename(str(f).rstrip('/'))
        src = PRETRAINED_SOURCES.get(name, '')
        url = re.search(r'https?://[^\s,;)]+', src)
        if name.startswith('bert-base'):
            url = f'https://huggingface.co/google-bert/{name}'
        elif url:
            url = url.group(0)
        rows.append(
            f"{name} <- {url or src.split(' (')[0] or 'no released source'}")
    return '; '.join(rows) or None


def add_weight_origins(family_dir, root):
    """Set ``Weights Origin`` (:func:`weight_origins`) of every model in
    ``<family_dir>/metafile.yml``, leaving the counted numbers as they are.

    Returns:
        Path: The metafile.
    """
    path = Path(family_dir) / 'metafile.yml'
    data = _load_yaml(path)
    for model in data.get('Models') or []:
        origin = weight_origins(str(Path(root) / model['Config']))
        meta = model.setdefault('Metadata', {})
        meta.pop('Weights Origin', None)
        if origin:
            meta['Weights Origin'] = origin
    _write_metafile(path, data)
    return path


def _write_metafile(path, data):
    with open(path, 'w') as f:
        f.write('# Parameters / FLOPs: computed by '
                'tools/analysis_tools/update_metafiles.py\n')
        yaml.safe_dump(data, f, sort_keys=False, allow_unicode=True)


def _load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f) or {}


def update_metafile(family_dir, root, skip=None, log=print):
    """Write ``<family_dir>/metafile.yml`` from the configs in the folder.

    One model per config (name = file stem), with computed ``Parameters``
    and ``FLOPs`` (plus ``Input Size`` and ``FLOPs Of``); fields not
    computed here (collections, ``Training Data``, ``Paper Results``) are
    kept; entries whose config no longer exists are dropped.

    Args:
        family_dir (Path): e.g. ``configs/trar_vit``.
        root (Path): Project root (metafile paths are relative to it).
        skip (dict[str, str]): Config stem -> why it is not counted (too
            heavy, or it needs files not present); the reason is written as
            ``Complexity Note`` next to ``FLOPs: null``. A config that fails
            to build gets its error there. Defaults to {}.
        log (callable): Progress printer. Defaults to print.

    Returns:
        Path: The metafile written.
    """
    family_dir, root = Path(family_dir), Path(root)
    skip = skip or {}
    path = family_dir / 'metafile.yml'
    old = _load_yaml(path) if path.is_file() else {}
    collections = old.get('Collections') or [
        dict(
            Name=family_dir.name,
            README=f'{family_dir.relative_to(root)}/'
            'README.md')
    ]
    collection = collections[0]['Name']
    by_name = {m['Name']: m for m in old.get('Models') or []}
    models = []
    for config in sorted(family_dir.glob('*.py')):
        entry = dict(by_name.get(config.stem, {}))
        entry['Name'] = config.stem
        entry['In Collection'] = collection
        meta = dict(entry.get('Metadata') or {})
        entry.pop('Results', None)  # no mmext run published yet
        for key in ('Input Size', 'FLOPs Of', 'Complexity Note'):
            meta.pop(key, None)
        if config.stem in skip:
            meta.update({
                'FLOPs': None,
                'Parameters': None,
                'Complexity Note': skip[config.stem]
            })
            log(f'{config.stem}: skipped ({skip[config.stem]})')
        else:
            start = time.time()
            try:
                info = count_complexity(str(config))
            except Exception as e:  # reported in the file, not hidden
                why = (f'not counted: {type(e).__name__}: '
                       f'{(str(e).splitlines() or [""])[0][:160]}')
                log(f'{config.stem}: {why}')
                meta.update({
                    'FLOPs': None,
                    'Parameters': None,
                    'Complexity Note': why
                })
            else:
                meta.update({
                    'FLOPs':
                    info['flops'],
                    'Parameters':
                    info['params'],
                    'Input Size':
                    '{}x{}'.format(*info['input_shape'][1:]),
                    'FLOPs Of':
                    info['flops_of'],
                })
                if info['note']:
                    meta['Complexity Note'] = info['note']
                log(f"{config.stem}: {info['params_str']} params, "
                    f"{info['flops_str']} FLOPs ({info['flops_of']}, "
                    f"{info['input_shape'][1]}x{info['input_shape'][2]}) "
                    f'in {time.time() - start:.1f} s')
        meta.pop('Weights Origin', None)
        origin = weight_origins(str(config))
        if origin:
            meta['Weights Origin'] = origin
        entry['Metadata'] = meta
        entry['Config'] = str(config.relative_to(root))
        models.append(entry)
    _write_metafile(path, dict(Collections=collections, Models=models))
    return path


def update_model_index(root):
    """Write ``model-index.yml`` importing every ``configs/*/metafile.yml``.

    Args:
        root (Path): Project root.

    Returns:
        Path: ``model-index.yml``.
    """
    root = Path(root)
    metafiles = sorted(
        p.relative_to(root).as_posix()
        for p in (root / 'configs').glob('*/metafile.yml'))
    path = root / 'model-index.yml'
    with open(path, 'w') as f:
        yaml.safe_dump({'Import': metafiles}, f, sort_keys=False)
    return path


def model_families(root):
    """Config folders holding models (``configs/<family>``)."""
    return sorted(
        p for p in (Path(root) / 'configs').iterdir()
        if p.is_dir() and p.name not in NON_MODEL_DIRS)
