# Copyright (c) mmext contributors. All rights reserved.
"""The image files of a folder or of a config's data set.

A leakage check must hash exactly the images a run trains and tests on, so a
config input builds the data set the runner would build (same registry,
``mmext`` default scope, same ``data_root`` / split / ann_file) and reads
each sample's ``img_path``; the pipeline is not run.
"""
import copy
import os
import os.path as osp

from mmext.utils.config import iter_config
from mmext.utils.fileio import file_kind

__all__ = [
    'IMAGE_EXTENSIONS', 'list_image_files', 'dataset_image_paths',
    'resolve_image_set', 'file_kind'
]

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff',
                    '.webp', '.ppm', '.pgm', '.pbm')


def list_image_files(folder):
    """Every image file under ``folder`` (recursive, sorted, by extension,
    case-insensitive)."""
    if not osp.isdir(folder):
        raise FileNotFoundError(f'image folder {folder} does not exist')
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(osp.join(root, name))
    return found


def _strip_pipelines(node):
    """Set every ``pipeline`` in a data set config tree to ``[]``."""
    for _, parent, key, _ in iter_config(node):
        if key == 'pipeline' and isinstance(parent, dict):
            parent[key] = []


def dataset_image_paths(config, split='train_dataloader', cfg_options=None):
    """Build ``config[split].dataset`` and return its images.

    Args:
        config (str | mmengine.Config): Config file or object.
        split (str): Dataloader key, e.g. 'train_dataloader',
            'val_dataloader', 'test_dataloader'.
        cfg_options (dict, optional): Overrides merged into the config
            first (mmengine ``--cfg-options`` style, e.g.
            ``{'train_dataloader.dataset.data_root': 'data/f102'}``).

    Returns:
        tuple[list[str], str | None]: every sample's ``img_path`` (in data
        set order) and the data set's ``data_root``.
    """
    from mmengine.config import Config

    from mmext.registry import DATASETS
    from mmext.utils import register_all_modules

    cfg = Config.fromfile(config) if isinstance(config, str) else config
    name = config if isinstance(config, str) else 'config'
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if split not in cfg or not cfg[split]:
        keys = [k for k in cfg.keys() if k.endswith('dataloader')]
        raise KeyError(f'{name} has no {split!r}; it has '
                       f'{keys or "no dataloaders"} (pass --train-split / '
                       '--heldout-split)')
    loader = cfg[split]
    ds_cfg = copy.deepcopy(loader.get('dataset', loader))
    ds_cfg = ds_cfg.to_dict() if hasattr(ds_cfg, 'to_dict') else ds_cfg
    _strip_pipelines(ds_cfg)
    register_all_modules(init_default_scope=True)
    try:
        dataset = DATASETS.build(ds_cfg)
    except Exception as e:
        raise RuntimeError(f'building {split}.dataset of {name} failed: '
                           f'{type(e).__name__}: {e}') from e
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    paths = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        if 'img_path' not in info:
            raise KeyError(f'{split}.dataset of {name} ({type(dataset)}) '
                           f'sample {i} has no img_path (keys: '
                           f'{sorted(info)}); dedup needs image files')
        paths.append(info['img_path'])
    data_root = getattr(dataset, 'data_root',
                        None) or ds_cfg.get('data_root') or None
    return paths, data_root


def resolve_image_set(spec, split, cfg_options=None):
    """A folder or a ``.py`` config -> ``(paths, root)``; ``root`` is what
    exclude paths are written relative to."""
    if osp.isdir(spec):
        return list_image_files(spec), spec
    if spec.endswith('.py') and osp.isfile(spec):
        paths, root = dataset_image_paths(spec, split, cfg_options)
        if root is None and paths:
            root = osp.commonpath([osp.dirname(osp.abspath(p)) for p in paths])
        return paths, root
    raise FileNotFoundError(f'{spec} is neither an image folder nor a .py '
                            'config file')
