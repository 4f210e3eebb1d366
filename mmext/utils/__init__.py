# Copyright (c) mmext contributors. All rights reserved.
from .checkpoint import (CheckpointBoundError, CheckpointMismatchError,
                         CorruptCheckpointError, UnsafeCheckpointError,
                         register_safe_checkpoint_loader, safe_torch_load)
from .config import format_config_path, iter_config, walk_config
from .dist import setup_cpu_distributed
from .paths import PRETRAINED_SOURCES, resolve_pretrained_paths
from .setup_env import register_all_modules

__all__ = [
    'register_all_modules', 'safe_torch_load', 'UnsafeCheckpointError',
    'CorruptCheckpointError', 'CheckpointBoundError',
    'CheckpointMismatchError', 'register_safe_checkpoint_loader',
    'resolve_pretrained_paths', 'PRETRAINED_SOURCES', 'setup_cpu_distributed',
    'iter_config', 'walk_config', 'format_config_path'
]
