# Copyright (c) mmext contributors. All rights reserved.
"""benchmarks/butd_opencv.py: the caffemodel and prototxt that
``butd_extract.py --opencv`` hands to OpenCV describe mmext's network."""
import re
import sys

import numpy as np
import pytest

from mmext.models.detectors import BUTDFasterRCNN
from mmext.models.utils.checkpoint_convert.butd_caffe import (
    convert_butd_caffemodel, expected_caffe_layers)
from mmext.utils.caffemodel import read_caffemodel
from ..conftest import ROOT, run_tool

sys.path.insert(0, str(ROOT / 'benchmarks'))
import butd_extract  # noqa: E402
import butd_opencv  # noqa: E402

ARCH = butd_extract._tiny_arch()


def test_caffemodel_round_trips_through_mmext_reader_and_converter(tmp_path):
    layers = butd_opencv.random_caffe_layers(ARCH, seed=3)
    path = tmp_path / 'net.caffemodel'
    butd_opencv.write_caffemodel(path, layers)
    read = read_caffemodel(str(path))
    assert list(read) == list(expected_caffe_layers(ARCH))
    for name, (kind, blobs) in layers.items():
        assert read[name].type == kind
        for got, want in zip(read[name].blobs, blobs):
            np.testing.assert_array_equal(np.asarray(got), want)
    sd, _ = convert_butd_caffemodel(str(path), model_cfg=ARCH)
    model = BUTDFasterRCNN(**ARCH)
    model.load_state_dict(sd, strict=True)
    conv1 = layers['conv1'][1][0]
    np.testing.assert_array_equal(model.backbone.conv1.weight.detach().numpy(),
                                  conv1)


def test_prototxt_names_every_weighted_layer_but_the_attribute_branch(
        tmp_path):
    path = tmp_path / 'net.prototxt'
    butd_opencv.write_prototxt(path, ARCH, (64, 96), 7)
    text = path.read_text()
    named = dict(re.findall(r'name: "([^"]+)" type: "(\w+)"', text))
    attr_branch = {'cls_embedding', 'fc_attr', 'attr_score'}
    for name, spec in expected_caffe_layers(ARCH).items():
        if name in attr_branch:
            assert name not in named
        else:
            assert named[name] == spec['type'], name
    # caffe strides sit on branch2a (res3a, res4a), res5 is dilated 2
    assert re.search(r'"res3a_branch2a".*stride: 2', text)
    assert re.search(r'"res4a_branch2a".*stride: 2', text)
    assert re.search(r'"res5a_branch2b".*pad: 2 dilation: 2', text)
    assert 'dim: 7 dim: 5' in text and 'dim: 64 dim: 96' in text


def test_opencv_matches_mmext_on_the_generated_net(tmp_path):
    """Needs an OpenCV with the caffe importer (4.x; 5.x dropped it)."""
    cv2 = pytest.importorskip('cv2')
    if not hasattr(cv2.dnn, 'readNetFromCaffe'):
        pytest.skip(f'OpenCV {cv2.__version__} has no caffe importer')
    proc = run_tool([
        ROOT / 'benchmarks' / 'butd_extract.py', '--opencv', '--tiny',
        '--images', '1', '--height', '64', '--width', '96'
    ], tmp_path)
    diffs = re.search(
        r'rpn fg prob (\S+), rpn deltas (\S+), pool5 (\S+), '
        r'cls_prob (\S+)', proc.stdout)
    assert all(float(d) < 1e-3 for d in diffs.groups()), diffs.groups()


def test_varint_and_blob_encoding():
    assert butd_opencv._varint(300) == b'\xac\x02'
    blob = butd_opencv._blob(np.zeros((2, 3), np.float32))
    # shape field (7) with packed dims 2, 3; data field (5) of 24 bytes
    assert blob.startswith(b'\x3a\x04\x0a\x02\x02\x03\x2a\x18')
    assert len(blob) == 8 + 24
