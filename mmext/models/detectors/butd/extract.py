# Copyright (c) mmext contributors. All rights reserved.
"""Old path of BUTD region extraction (issue 23: application code is not a
model).

Extraction over a folder (``init_butd_detector``, ``extract_regions``,
``list_images``, ...) moved to :mod:`mmext.apis.butd_extraction`, image ids
to :mod:`mmext.apis.region_files`; a models module must not import
``mmext.apis``, so importing those names from here raises an ImportError
naming the new module. ``tsv_image_id`` went down to
:mod:`mmext.datasets.region_tsv` (the TSV reader needs it) and is
re-exported.
"""
from mmext.datasets.region_tsv import tsv_image_id

__all__ = ['tsv_image_id']

_MOVED = dict.fromkeys(
    ('IMAGE_EXTENSIONS', 'DEFAULT_SELECT', 'init_butd_detector', 'list_images',
     'shard_from_env', 'regions_record', 'extract_regions'),
    'mmext.apis.butd_extraction')
_MOVED.update(
    dict.fromkeys(('assign_image_ids', 'MAX_ID_BYTES'),
                  'mmext.apis.region_files'))


def __getattr__(name):
    if name in _MOVED:
        raise ImportError(f'{name} moved from {__name__} to {_MOVED[name]} '
                          f'(application code); use: from {_MOVED[name]} '
                          f'import {name}')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
