# Copyright (c) mmext contributors. All rights reserved.
from .checkpoint_convert import CONVERTERS, unwrap_state_dict
from .freeze import (STAGE_RULES, backbone_stages, count_parameters,
                     freeze_module, is_kept_in_eval, register_stage_rule)

__all__ = [
    'CONVERTERS', 'unwrap_state_dict', 'STAGE_RULES', 'backbone_stages',
    'count_parameters', 'freeze_module', 'is_kept_in_eval',
    'register_stage_rule'
]
