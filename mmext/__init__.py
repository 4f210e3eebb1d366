# Copyright (c) mmext contributors. All rights reserved.
"""mmext: an OpenMMLab extension package on mmpretrain 1.2.

Importing mmext checks that the installed mmcv / mmengine / mmpretrain are in
the ranges mmext is tested with, and registers the safe-checkpoint loader
(torch >= 2.6 ``weights_only=True`` with an allowlist of the globals mmengine
checkpoints contain).
"""
import warnings

from mmengine.utils import digit_version

# mmcv-lite says at import that it lacks a compiled op (deformable attention)
# that no mmext model uses; with it, every tool's one-line error had a
# two-line warning in front. Full mmcv (GPU ops) does not warn.
warnings.filterwarnings(
    'ignore',
    message='Fail to import ``MultiScaleDeformableAttention``',
    category=UserWarning)

from .version import __version__, version_info  # noqa: E402

# (package, minimum inclusive, maximum exclusive, how to fix)
_RANGES = (
    ('mmcv', '2.0.0', '2.4.0',
     'pip install "mmcv-lite==2.2.0" (CPU) or "mmcv>=2.0.0,<2.4.0" (GPU ops)'),
    ('mmengine', '0.8.3', '1.0.0', 'pip install "mmengine==0.10.7"'),
    ('mmpretrain', '1.2.0', '1.3.0', 'pip install "mmpretrain==1.2.0"'),
)


def _check_versions():
    import importlib
    for name, low, high, fix in _RANGES:
        try:
            installed = importlib.import_module(name).__version__
        except ImportError as e:
            raise ImportError(f'mmext needs {name}>={low},<{high}, which is '
                              f'not installed ({e}); fix: {fix}') from e
        if not (digit_version(low) <= digit_version(installed) <
                digit_version(high)):
            raise AssertionError(
                f'mmext {__version__} needs {name}>={low},<{high} but '
                f'{name}=={installed} is installed; fix: {fix}')


_check_versions()

from .utils.checkpoint import register_safe_checkpoint_loader  # noqa: E402

register_safe_checkpoint_loader()

__all__ = ['__version__', 'version_info']
