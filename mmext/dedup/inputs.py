# Copyright (c) mmext contributors. All rights reserved.
"""The image files of a folder or of a config's data set.

A leakage check must hash exactly the images a run trains and tests on, so a
config input builds the data set the runner would build (same registry,
``mmext`` default scope, same ``data_root`` / split / ann_file) and reads
each sample's ``img_path``; the pipeline is not run.

A folder input is walked the way mmpretrain's ``CustomDataset`` lists a
folder (mmengine ``LocalBackend.list_dir_or_file(recursive=True)``:
``os.scandir``, symlinked folders and files followed, files whose name
starts with ``.`` left out), so the check sees the images training sees.
What that listing lacks and :func:`scan_image_folder` adds: a symlink to
a folder's own ancestor is listed once as a loop instead of being walked
until the path is too long, an unreadable folder does not stop the walk,
and every entry with an image extension that is not used (a directory
``x.jpg``, a FIFO, a socket, a broken symlink, a hidden file) is returned
with the reason, for ``skipped.csv``.
"""
import copy
import errno
import os
import os.path as osp
from typing import List, NamedTuple, Tuple

from mmext.utils.config import iter_config
from mmext.utils.fileio import file_kind

__all__ = [
    'IMAGE_EXTENSIONS', 'ImageListing', 'scan_image_folder',
    'list_image_files', 'dataset_image_paths', 'resolve_image_set', 'file_kind'
]

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff',
                    '.webp', '.ppm', '.pgm', '.pbm')


class ImageListing(NamedTuple):
    """The images of an input and the image-named entries left out.

    Attributes:
        paths (list[str]): Image files to hash, in walk order (per folder:
            its files sorted by name, then its sub-folders sorted).
        skipped (list[tuple[str, str]]): ``(path, reason)`` of every entry
            with an image extension that is not in ``paths``, and of every
            folder that could not be walked.
        root (str | None): What exclude paths are written relative to.
    """
    paths: List[str]
    skipped: List[Tuple[str, str]]
    root: object = None


def _dir_key(path):
    """``(st_dev, st_ino)`` of a folder (symlinks followed)."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _kind(entry):
    """'file', 'dir' or 'other' (symlinks followed; a looping symlink,
    which makes ``DirEntry.is_file`` raise, is 'other')."""
    try:
        if entry.is_file():
            return 'file'
        return 'dir' if entry.is_dir() else 'other'
    except OSError:
        return 'other'


def _not_a_file_reason(path):
    """Why an entry that is neither a file nor a folder (symlinks
    followed) is not an image: broken or looping symlink, FIFO, ..."""
    try:
        st = os.stat(path)
    except OSError as e:
        if osp.islink(path):
            try:
                target = os.readlink(path)
            except OSError:
                target = '?'
            if e.errno == errno.ELOOP:
                return f'symlink loop ({target!s} leads back to itself)'
            return f'broken symlink (target {target} does not exist)'
        return f'not accessible ({type(e).__name__}: {e.strerror})'
    return f'not a regular file ({file_kind(st.st_mode)})'


def scan_image_folder(folder, extensions=IMAGE_EXTENSIONS):
    """Every image file under ``folder``, and why other image-named
    entries are left out.

    Follows symlinks to files and folders as mmpretrain's ``CustomDataset``
    does (see the module doc); a folder that is its own ancestor through a
    symlink is not entered again and is listed as ``symlink loop``.
    Extensions match case-insensitively.

    Args:
        folder (str): The image folder.
        extensions (tuple[str]): Lower-case image extensions. Defaults to
            :data:`IMAGE_EXTENSIONS`.

    Returns:
        ImageListing: ``paths`` and ``skipped`` (``root`` is ``folder``).

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
    """
    if not osp.isdir(folder):
        raise FileNotFoundError(f'image folder {folder} does not exist')
    folder = os.fspath(folder)
    paths, skipped = [], []
    # (folder, keys of its ancestors and itself); depth-first, in order
    stack = [(folder, (_dir_key(folder), ))]
    while stack:
        top, chain = stack.pop()
        try:
            with os.scandir(top) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            skipped.append((top, f'folder not readable ({type(e).__name__}:'
                            f' {e.strerror}); its images are not listed'))
            continue
        subdirs = []
        for entry in entries:
            is_image = entry.name.lower().endswith(extensions)
            kind = _kind(entry)
            if kind == 'file':
                if not is_image:
                    continue
                if entry.name.startswith('.'):
                    skipped.append((entry.path, 'hidden file (mmpretrain\'s '
                                    'CustomDataset does not list it)'))
                else:
                    paths.append(entry.path)
            elif kind == 'dir':
                try:
                    key = _dir_key(entry.path)
                except OSError as e:
                    skipped.append((entry.path, f'folder not accessible '
                                    f'({type(e).__name__}: {e.strerror})'))
                    continue
                if key in chain:
                    skipped.append((entry.path, 'symlink loop (links to its '
                                    'own ancestor folder; not entered)'))
                    continue
                if is_image:
                    skipped.append((entry.path, 'a directory, not an image '
                                    '(the images inside it are listed)'))
                subdirs.append((entry.path, chain + (key, )))
            elif is_image:
                skipped.append((entry.path, _not_a_file_reason(entry.path)))
        stack.extend(reversed(subdirs))
    return ImageListing(paths, skipped, folder)


def list_image_files(folder):
    """Every image file under ``folder`` (see :func:`scan_image_folder`,
    which also says which image-named entries were left out and why)."""
    return scan_image_folder(folder).paths


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
    """A folder or a ``.py`` config -> :class:`ImageListing`; its ``root``
    is what exclude paths are written relative to (a config's entries
    that are not regular files are reported by the hasher)."""
    if osp.isdir(spec):
        return scan_image_folder(spec)
    if spec.endswith('.py') and osp.isfile(spec):
        paths, root = dataset_image_paths(spec, split, cfg_options)
        if root is None and paths:
            root = osp.commonpath([osp.dirname(osp.abspath(p)) for p in paths])
        return ImageListing(paths, [], root)
    raise FileNotFoundError(f'{spec} is neither an image folder nor a .py '
                            'config file')
