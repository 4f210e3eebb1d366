# Copyright (c) mmext contributors. All rights reserved.
"""A generated Hugging Face BERT folder for the ViLBERT tests."""
import pytest

from mmext.testing.bert import make_bert_folder
from mmext.utils import register_all_modules

register_all_modules()


@pytest.fixture(scope='session')
def bert_dir(tmp_path_factory):
    return make_bert_folder(tmp_path_factory.mktemp('bert') / 'bert')
