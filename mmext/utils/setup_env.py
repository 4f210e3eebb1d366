# Copyright (c) mmext contributors. All rights reserved.
import datetime
import warnings

from mmengine import DefaultScope


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

    import mmext.datasets  # noqa: F401
    import mmext.engine  # noqa: F401
    import mmext.evaluation  # noqa: F401
    import mmext.models  # noqa: F401
    import mmext.visualization  # noqa: F401

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
