# Copyright (c) mmext contributors. All rights reserved.
from .inference import init_classifier, predict_topk
from .prepare import ConfigError, check_config_types, prepare_config
from .report import (build_report_pipeline, generate_report,
                     restore_vocab_from_checkpoint)

__all__ = ['prepare_config', 'check_config_types', 'ConfigError',
           'restore_vocab_from_checkpoint', 'build_report_pipeline',
           'generate_report', 'init_classifier', 'predict_topk']
