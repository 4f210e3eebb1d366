# Copyright (c) mmext contributors. All rights reserved.
from .tokenizer import R2GenTokenizer

__all__ = ['R2GenTokenizer']
