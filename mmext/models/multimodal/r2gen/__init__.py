# Copyright (c) mmext contributors. All rights reserved.
from .data_preprocessor import ReportDataPreprocessor, pad_tokens
from .decoding import beam_search, greedy_search
from .generator import R2GenReportGenerator
from .r2gen_head import R2GenHead
from .tokenizer import R2GenTokenizer

__all__ = [
    'ReportDataPreprocessor', 'pad_tokens', 'beam_search', 'greedy_search',
    'R2GenReportGenerator', 'R2GenHead', 'R2GenTokenizer'
]
