# Copyright (c) mmext contributors. All rights reserved.
import datetime
import importlib
import warnings

from mmengine import DefaultScope

# The mmext packages that register types. configs/_base_/default_runtime.py
# lists the same ones in ``custom_imports``, so loading any mmext config
# registers them (also into mmpretrain's registries, see mmext/registry.py)
# and mmpretrain's APIs and tools build mmext models unchanged.
REGISTERING_MODULES = ('mmext.datasets', 'mmext.engine', 'mmext.evaluation',
                       'mmext.models', 'mmext.visualization')


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every mmext and mmpretrain module that registers something.

    mmengine calls ``mmext.utils.register_all_modules(False)`` itself when a
    runner's ``default_scope`` is ``'mmext'``. Parents are imported too,
    because a child registry's lookup in its parents does not trigger the
    parents' lazy ``locations`` import.

    Args:
        init_default_scope (bool): Also make ``'mmext'`` the default scope.
            Defaults to True.
    """
    import mmpretrain.utils
    mmpretrain.utils.register_all_modules(init_default_scope=False)

    for name in REGISTERING_MODULES:
        importlib.import_module(name)

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None:
        DefaultScope.get_instance('mmext', scope_name='mmext')
    elif current.scope_name != 'mmext':
        warnings.warn(f'The current default scope "{current.scope_name}" '
                      'is not "mmext"; register_all_modules switches it to '
                      '"mmext".')
        DefaultScope.get_instance(
            f'mmext-{datetime.datetime.now()}', scope_name='mmext')
