# Copyright (c) mmext contributors. All rights reserved.
"""Every checkpoint converter refuses a well-formed file of the wrong
content with a :class:`CheckpointConversionError` subclass (one line, naming
the cause), writes nothing, and the old module paths still import."""
import importlib
import re

import numpy as np
import pytest
import torch

from mmext.models.utils.checkpoint_convert import (
    CheckpointConversionError, convert_checkpoint_file,
    convert_r2gen_checkpoint, convert_vilbert_multitask_file,
    convert_vit_npz_file, convert_vit_trar_checkpoint)
from mmext.models.utils.checkpoint_convert.butd_caffe import \
    convert_butd_caffemodel
from .test_butd_convert import write_caffemodel


def _foreign_state_dict(tmp_path):
    src = tmp_path / 'foreign.pth'
    torch.save({'encoder.foo.weight': torch.zeros(2, 3)}, src)
    return src


def _classification(tmp_path, dst):
    convert_checkpoint_file('timm-vit', str(_foreign_state_dict(tmp_path)),
                            str(dst))


def _vit_npz(tmp_path, dst):
    src = tmp_path / 'foreign.npz'
    np.savez(src, foo=np.zeros((2, 3), np.float32))
    convert_vit_npz_file(str(src), str(dst))


def _vit_trar(tmp_path, dst):
    convert_vit_trar_checkpoint(str(_foreign_state_dict(tmp_path)), str(dst))


def _r2gen(tmp_path, dst):
    convert_r2gen_checkpoint(
        str(_foreign_state_dict(tmp_path)), str(dst), vocab=['a', 'b'])


def _vilbert(tmp_path, dst):
    convert_vilbert_multitask_file(
        str(_foreign_state_dict(tmp_path)), str(dst), log=lambda line: None)


def _butd(tmp_path, dst):
    src = tmp_path / 'foreign.caffemodel'
    write_caffemodel(
        src, {'conv1': ('Convolution', [np.zeros((2, 3, 1, 1), np.float32)])})
    convert_butd_caffemodel(str(src), str(dst))


CONVERTERS = (_classification, _vit_npz, _vit_trar, _r2gen, _vilbert, _butd)


@pytest.mark.parametrize(
    'convert', CONVERTERS, ids=lambda f: f.__name__.strip('_'))
def test_foreign_checkpoint_is_a_conversion_error(tmp_path, convert):
    dst = tmp_path / 'out.pth'
    with pytest.raises(Exception) as info:
        convert(tmp_path, dst)
    err = info.value
    assert isinstance(err, CheckpointConversionError), type(err).__mro__
    msg = str(err)
    assert '\n' not in msg and len(msg) > 20
    # the message names what is wrong (a foreign, missing or unmatched key)
    assert re.search(r'\bnot\b|\bno\b|lacks|missing', msg), msg
    assert not dst.exists()


@pytest.mark.parametrize('old, new, names', [
    ('mmext.models.multimodal.vilbert.convert',
     'mmext.models.utils.checkpoint_convert.vilbert_multitask', [
         'ViLBERTConversionError', 'COATTN_KEYS', 'convert_vilbert_multitask',
         'convert_vilbert_multitask_file', 'unwrap_vilbert_checkpoint'
     ]),
    ('mmext.models.detectors.butd.caffe_convert',
     'mmext.models.utils.checkpoint_convert.butd_caffe', [
         'ButdConversionError', 'DEFAULT_ARCH', 'convert_butd_caffemodel',
         'expected_caffe_layers', '_fold_bn'
     ]),
])
def test_old_import_paths_are_the_new_modules(old, new, names):
    old_mod, new_mod = importlib.import_module(old), importlib.import_module(
        new)
    assert old_mod is new_mod
    for name in names:
        assert getattr(old_mod, name) is getattr(new_mod, name)
    assert issubclass(getattr(new_mod, names[0]), CheckpointConversionError)


def test_butd_arch_defaults_are_the_model_constructor_defaults():
    import inspect

    from mmext.models.detectors import BUTDFasterRCNN
    from mmext.models.utils.checkpoint_convert.butd_caffe import (
        DEFAULT_ARCH, arch_from_model_cfg)
    params = inspect.signature(BUTDFasterRCNN.__init__).parameters
    for key, value in DEFAULT_ARCH.items():
        if key != 'num_anchors':
            assert params[key].default == value
    assert DEFAULT_ARCH['num_anchors'] == len(
        params['anchor_scales'].default) * len(params['anchor_ratios'].default)
    assert arch_from_model_cfg(dict(anchor_scales=(8, )))['num_anchors'] == 3
