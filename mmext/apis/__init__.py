# Copyright (c) mmext contributors. All rights reserved.
from .butd_extraction import (extract_regions, init_butd_detector, list_images,
                              regions_record)
from .inference import init_classifier, predict_topk
from .inferencers import (BUTDInferencer, MMExtInferencer, ReportInferencer,
                          ViLBERTInferencer, build_inference_model,
                          get_inferencer, inference_model, init_report_model,
                          model_task)
from .prepare import ConfigError, check_config_types, prepare_config
from .report_generation import (build_report_model, build_report_pipeline,
                                check_study_views, generate_report,
                                load_report_config,
                                restore_vocab_from_checkpoint)

__all__ = [
    'prepare_config', 'check_config_types', 'ConfigError',
    'restore_vocab_from_checkpoint', 'build_report_pipeline',
    'generate_report', 'init_classifier', 'predict_topk', 'load_report_config',
    'check_study_views', 'build_report_model'
]
__all__ += [
    'MMExtInferencer', 'ViLBERTInferencer', 'ReportInferencer',
    'BUTDInferencer', 'build_inference_model', 'init_report_model',
    'get_inferencer', 'inference_model', 'model_task'
]
__all__ += [
    'init_butd_detector', 'extract_regions', 'list_images', 'regions_record'
]
