# Copyright (c) mmext contributors. All rights reserved.
from .prepare import ConfigError, check_config_types, prepare_config

__all__ = ['prepare_config', 'check_config_types', 'ConfigError']
