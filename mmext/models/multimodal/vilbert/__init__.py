# Copyright (c) mmext contributors. All rights reserved.
from .classifier import ViLBERTClassifier
from .coattention import CoAttentionLayer, StreamFFN
from .data_preprocessor import ViLBERTDataPreprocessor
from .heads import info_nce, select_tokens
from .metric import ViLBERTPretrainMetric
from .schedule import COATTENTION_PRESETS, resolve_schedule, schedule_steps
from .text_stream import build_bert, build_bert_tokenizer, find_bert_folder
from .vilbert import ViLBERT
from .visual_stream import PatchVisualStream, RegionVisualStream

__all__ = [
    'ViLBERT', 'ViLBERTClassifier', 'CoAttentionLayer', 'StreamFFN',
    'PatchVisualStream', 'RegionVisualStream', 'ViLBERTDataPreprocessor',
    'ViLBERTPretrainMetric', 'COATTENTION_PRESETS', 'resolve_schedule',
    'schedule_steps', 'build_bert', 'build_bert_tokenizer', 'find_bert_folder',
    'info_nce', 'select_tokens'
]
