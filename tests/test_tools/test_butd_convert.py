# Copyright (c) mmext contributors. All rights reserved.
"""BUTD caffemodel reading and conversion on generated caffemodels.

The caffemodels are written with the ``protobuf`` runtime from a message
description of BVLC ``caffe.proto`` (field numbers in REFERENCES.md), not
with mmext's reader, so reader and writer share no code. The layer names
are those of the BUTD ``test.prototxt`` (``tests/data/butd_caffe_blobs.json``
is that network's full table of blob shapes); widths and block counts are
reduced so the files stay small, and one check compares the full-size
table with what ``BUTDFasterRCNN`` expects on the meta device. The
converted model is compared with the network recomputed layer by layer
from the raw blobs (caffe's BatchNorm / Scale / blocked-softmax formulas).
"""
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from mmext.models.detectors import BUTDFasterRCNN
from mmext.models.detectors.butd.caffe_convert import (ButdConversionError,
                                                       convert_butd_caffemodel,
                                                       convert_caffe_layers,
                                                       expected_caffe_layers)
from mmext.models.utils.checkpoint_convert import CheckpointConversionError
from mmext.utils import safe_torch_load
from mmext.utils.caffemodel import CaffeLayer, CaffeModelError, read_caffemodel
from mmext.utils.fileio import InputFileError
from ..conftest import ROOT, run_tool
from ..test_apis.infer_workspaces import BUTD_ARCH

TABLE = ROOT / 'tests' / 'data' / 'butd_caffe_blobs.json'
TOOL = ROOT / 'tools' / 'model_converters' / 'butd_caffe_to_mmext.py'
# the tiny BUTD of the inferencer tests, with uneven stages
ARCH = dict(BUTD_ARCH, stage_blocks=(2, 1, 4, 1))
RELATION = {
    'heatmap_conv1': [(8, 4, 3, 3), (8, )],
    'fc_rel1': [(6, 10), (6, )],
    'rel_score': [(3, 6), (3, )]
}

_F = descriptor_pb2.FieldDescriptorProto


def _caffe_messages():
    """NetParameter & co. (caffe.proto field numbers), built at run time."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name='mmext_test_caffe.proto',
        package='mmext_test_caffe',
        syntax='proto2')

    def msg(name, fields):
        m = fdp.message_type.add(name=name)
        for fname, num, ftype, label, tname, packed in fields:
            f = m.field.add(name=fname, number=num, type=ftype, label=label)
            if tname:
                f.type_name = '.mmext_test_caffe.' + tname
            if packed:
                f.options.packed = True

    rep, opt = _F.LABEL_REPEATED, _F.LABEL_OPTIONAL
    msg('BlobShape', [('dim', 1, _F.TYPE_INT64, rep, None, True)])
    msg('BlobProto', [('num', 1, _F.TYPE_INT32, opt, None, False),
                      ('channels', 2, _F.TYPE_INT32, opt, None, False),
                      ('height', 3, _F.TYPE_INT32, opt, None, False),
                      ('width', 4, _F.TYPE_INT32, opt, None, False),
                      ('data', 5, _F.TYPE_FLOAT, rep, None, True),
                      ('shape', 7, _F.TYPE_MESSAGE, opt, 'BlobShape', False),
                      ('double_data', 8, _F.TYPE_DOUBLE, rep, None, True)])
    msg(
        'LayerParameter',
        [
            ('name', 1, _F.TYPE_STRING, opt, None, False),
            ('type', 2, _F.TYPE_STRING, opt, None, False),
            ('bottom', 3, _F.TYPE_STRING, rep, None, False),
            ('top', 4, _F.TYPE_STRING, rep, None, False),
            ('blobs', 7, _F.TYPE_MESSAGE, rep, 'BlobProto', False),
            ('phase', 10, _F.TYPE_INT32, opt, None, False),
            # PA's fork reuses 147 for roi_pooling_param: must be skipped
            ('fork_param', 147, _F.TYPE_BYTES, opt, None, False)
        ])
    msg('V1LayerParameter',
        [('bottom', 2, _F.TYPE_STRING, rep, None, False),
         ('name', 4, _F.TYPE_STRING, opt, None, False),
         ('type', 5, _F.TYPE_INT32, opt, None, False),
         ('blobs', 6, _F.TYPE_MESSAGE, rep, 'BlobProto', False)])
    msg('NetParameter',
        [('name', 1, _F.TYPE_STRING, opt, None, False),
         ('layers', 2, _F.TYPE_MESSAGE, rep, 'V1LayerParameter', False),
         ('layer', 100, _F.TYPE_MESSAGE, rep, 'LayerParameter', False)])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        n: message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f'mmext_test_caffe.{n}'))
        for n in ('NetParameter', 'BlobProto')
    }


MSG = _caffe_messages()


def _fill_blob(blob, array, legacy=False, double=False):
    array = np.asarray(array)
    if legacy:  # pre-2015 caffemodels: num/channels/height/width
        dims = [1] * (4 - array.ndim) + list(array.shape)
        blob.num, blob.channels, blob.height, blob.width = dims
    else:
        blob.shape.dim.extend(array.shape)
    if double:
        blob.double_data.extend(array.astype(np.float64).ravel().tolist())
    else:
        blob.data.extend(array.astype(np.float32).ravel().tolist())


def write_caffemodel(path, layers, v1_layers=(), legacy=(), double=()):
    """layers: {name: (type, [arrays])} as NetParameter.layer; v1_layers:
    names written as legacy V1 ``layers`` (type enum)."""
    net = MSG['NetParameter'](name='ResNet-101')
    for name, (kind, blobs) in layers.items():
        if name in v1_layers:
            layer = net.layers.add(
                name=name, type={
                    'Convolution': 4,
                    'InnerProduct': 14
                }[kind])
        else:
            layer = net.layer.add(
                name=name, type=kind, phase=1, fork_param=b'\x08\x0e\x10\x0e')
            layer.bottom.append('data')
        for blob in blobs:
            _fill_blob(
                layer.blobs.add(),
                blob,
                legacy=name in legacy,
                double=name in double)
    # a layer without blobs, like ReLU
    net.layer.add(name='conv1_relu', type='ReLU').top.append('conv1')
    Path(path).write_bytes(net.SerializeToString())


def random_butd_layers(arch=ARCH, seed=0, relation=True):
    rng = np.random.RandomState(seed)
    out = {}
    for name, spec in expected_caffe_layers(arch).items():
        blobs = []
        for i, shape in enumerate(spec['shapes']):
            if spec['type'] == 'BatchNorm':
                blobs.append(
                    rng.uniform(0.5, 3, shape) if i == 1 else  # var
                    rng.uniform(0.5, 2, shape) if i == 2 else  # sf
                    rng.randn(*shape))
            else:
                blobs.append(rng.randn(*shape) * 0.3)
        out[name] = (spec['type'], [b.astype(np.float32) for b in blobs])
    if relation:
        for name, shapes in RELATION.items():
            kind = 'Convolution' if len(shapes[0]) == 4 else 'InnerProduct'
            out[name] = (kind,
                         [rng.randn(*s).astype(np.float32) for s in shapes])
    return out


@pytest.fixture(scope='module')
def caffemodel(tmp_path_factory):
    layers = random_butd_layers()
    path = tmp_path_factory.mktemp('butd') / 'butd_small.caffemodel'
    write_caffemodel(
        path,
        layers,
        v1_layers=('cls_score', ),
        legacy=('fc_attr', ),
        double=('attr_score', ))
    return path, layers


def test_reader_round_trip(caffemodel):
    path, layers = caffemodel
    read = read_caffemodel(str(path))
    assert set(read) == set(layers)  # ReLU (no blobs) left out
    for name, (kind, blobs) in layers.items():
        assert read[name].type == kind, name
        for got, want in zip(read[name].blobs, blobs):
            if name == 'fc_attr':  # legacy 4-d shape (1, 1, out, in)
                assert got.shape == (1, ) * (4 - want.ndim) + want.shape
            assert got.dtype == (
                np.float64 if name == 'attr_score' else np.float32)
            np.testing.assert_array_equal(got.reshape(want.shape), want)
    assert 'conv1_relu' in read_caffemodel(str(path), with_empty=True)


@pytest.mark.parametrize(
    'content,match',
    [
        (b'', 'is empty'),
        (b'name: "ResNet-101"\nlayer {', 'text prototxt'),
        (None, 'not a readable caffemodel'),  # truncated
    ])
def test_reader_refuses_bad_files(tmp_path, caffemodel, content, match):
    bad = tmp_path / 'bad.caffemodel'
    data = caffemodel[0].read_bytes()
    bad.write_bytes(data[:len(data) // 2] if content is None else content)
    with pytest.raises(CaffeModelError, match=match):
        read_caffemodel(str(bad))


def test_convert_loads_strictly_and_reports(caffemodel):
    path, layers = caffemodel
    sd, report = convert_butd_caffemodel(str(path), model_cfg=ARCH)
    model = BUTDFasterRCNN(**ARCH)
    model.load_state_dict(sd, strict=True)
    used = {u['layer'] for u in report['used']}
    assert used == set(expected_caffe_layers(ARCH))
    ignored = {i['layer']: i['reason'] for i in report['ignored']}
    assert set(ignored) == set(RELATION)
    assert all('relation head' in r for r in ignored.values())
    # BN: caffe's mean / sf and var / sf; Scale: gamma, beta
    mean, var, sf = layers['bn2a_branch2b'][1]
    bn = model.backbone.layer1[0].bn2
    np.testing.assert_allclose(
        bn.running_mean.numpy(), mean * (1 / sf), rtol=1e-6)
    np.testing.assert_allclose(
        bn.running_var.numpy(), var * (1 / sf), rtol=1e-6)
    np.testing.assert_array_equal(bn.weight.numpy(),
                                  layers['scale2a_branch2b'][1][0])
    # class-major bbox_pred kept with background rows; embedding as is
    head = {k: v.numpy() for k, v in model.roi_head.state_dict().items()}
    np.testing.assert_array_equal(head['bbox_pred.weight'],
                                  layers['bbox_pred'][1][0])
    np.testing.assert_array_equal(head['cls_embedding.weight'],
                                  layers['cls_embedding'][1][0])
    np.testing.assert_array_equal(head['attr_score.bias'],
                                  layers['attr_score'][1][1])


def test_converted_rpn_equals_caffe_softmax(caffemodel):
    """fg probability of the converted 12-logit head == caffe's blocked
    2-way softmax computed from the raw 24-channel blobs."""
    path, layers = caffemodel
    sd, _ = convert_butd_caffemodel(str(path), model_cfg=ARCH)
    model = BUTDFasterRCNN(**ARCH).eval()
    model.load_state_dict(sd, strict=True)
    torch.manual_seed(0)
    feats = model.backbone(torch.rand(1, 3, 96, 128) * 255 - 128)
    logits, _ = model.rpn_head(feats)
    w, b = (torch.from_numpy(x) for x in layers['rpn_conv/3x3'][1])
    hidden = F.relu(F.conv2d(feats, w, b, padding=1))
    w, b = (torch.from_numpy(x) for x in layers['rpn_cls_score'][1])
    raw = F.conv2d(hidden, w, b)
    _, c, h, wd = raw.shape
    prob = torch.softmax(raw.view(1, 2, -1, wd), dim=1).view(1, c, h, wd)
    torch.testing.assert_close(
        torch.sigmoid(logits), prob[:, c // 2:], rtol=1e-4, atol=1e-6)


def test_convert_refuses_missing_layer_and_wrong_shape(tmp_path):
    layers = random_butd_layers(relation=False)
    del layers['res4b2_branch2c']
    path = tmp_path / 'missing.caffemodel'
    write_caffemodel(path, layers)
    with pytest.raises(ButdConversionError, match="'res4b2_branch2c'"):
        convert_butd_caffemodel(str(path), model_cfg=ARCH)
    layers = random_butd_layers(relation=False)
    layers['bbox_pred'] = ('InnerProduct', [
        np.zeros((24, 32), np.float32),
        np.zeros(24, np.float32)
    ])
    write_caffemodel(path, layers)
    with pytest.raises(
            ButdConversionError,
            match=r"'bbox_pred' blob 0 has "
            r'shape \(24, 32\), expected \(28, 128\)'):
        convert_butd_caffemodel(str(path), model_cfg=ARCH)


def test_full_size_table_matches_model_state_dict():
    """test.prototxt's 320 blob-carrying layers == the converter's plan,
    and converting blobs of those shapes (meta tensors: nothing allocated)
    fills the full BUTDFasterRCNN state dict exactly."""
    table = json.loads(TABLE.read_text())['layers']
    assert len(table) == 320
    assert dict(expected_caffe_layers()) == table
    layers = {
        name:
        CaffeLayer(name, spec['type'],
                   [torch.empty(s, device='meta') for s in spec['shapes']])
        for name, spec in table.items()
    }
    sd, report = convert_caffe_layers(layers)
    with torch.device('meta'):
        model = BUTDFasterRCNN()
    own = model.state_dict()
    assert set(sd) == set(own)
    assert {k: tuple(v.shape) for k, v in sd.items()} == \
        {k: tuple(v.shape) for k, v in own.items()}
    assert own['rpn_head.rpn_cls.weight'].shape == (12, 512, 1, 1)
    assert own['roi_head.bbox_pred.weight'].shape == (6404, 2048)
    assert not report['ignored']
    assert not any('anchor' in k for k in own)  # generated, not loaded


def small_config(tmp_path):
    cfg = tmp_path / 'butd_small.py'
    cfg.write_text("_base_ = ['{}']\nmodel = dict({})\n".format(
        ROOT / 'configs/butd/butd_faster-rcnn_r101-caffe-c4_vg.py',
        ', '.join(f'{k}={v!r}' for k, v in ARCH.items())))
    return cfg


def test_cli_converts_and_writes_report(tmp_path, caffemodel):
    cfg = small_config(tmp_path)
    vocab = tmp_path / 'objects_vocab.txt'
    vocab.write_text('\n'.join(['cat', 'dog', 'gray,grey', 'a', 'b', 'c']))
    dst = tmp_path / 'butd_small.pth'
    proc = run_tool(
        [TOOL, caffemodel[0], dst, '--config', cfg, '--objects-vocab', vocab],
        cwd=tmp_path)
    assert 'ignored fc_rel1' in proc.stdout and 'relation head' in proc.stdout
    ckpt = safe_torch_load(str(dst), map_location='cpu')
    model = BUTDFasterRCNN(**ARCH)
    model.load_state_dict(ckpt['state_dict'], strict=True)
    assert ckpt['meta']['dataset_meta']['classes'][:4] == [
        '__background__', 'cat', 'dog', 'gray,grey'
    ]
    report = json.loads(Path(str(dst) + '.report.json').read_text())
    assert len(report['used']) == len(expected_caffe_layers(ARCH))


def test_convert_refuses_vocabulary_of_wrong_size(tmp_path, caffemodel):
    vocab = tmp_path / 'objects_vocab.txt'
    vocab.write_text('cat\ndog\n')
    with pytest.raises(
            ButdConversionError,
            match='has 2 entries but the model predicts 6 '
            'classes'):
        convert_butd_caffemodel(
            str(caffemodel[0]), model_cfg=ARCH, objects_vocab=str(vocab))


@pytest.mark.parametrize('kind', ['fifo', 'wire-type-0'])
def test_cli_refuses_bad_caffemodel_in_one_line(tmp_path, kind):
    """A FIFO (open() used to wait forever) and a bias written as varints
    (read as byte offsets: garbage weights, exit 0): exit 1, one line."""
    from ..test_utils.test_caffemodel import _encode, key, layer, shape
    src = tmp_path / f'{kind}.caffemodel'
    if kind == 'fifo':
        os.mkfifo(src)
    else:
        layers = random_butd_layers(relation=False)
        w, b = layers.pop('cls_score')[1]
        write_caffemodel(src, layers)
        bias = shape(b.shape) + b''.join(
            key(5, 0) + _encode(100 + i) for i in range(b.size))
        weight = shape(w.shape) + key(5, 2) + _encode(w.nbytes) + \
            w.tobytes()
        with open(src, 'ab') as f:
            f.write(layer(b'cls_score', [weight, bias]))
    dst = tmp_path / 'out.pth'
    proc = run_tool([TOOL, src, dst, '--config',
                     small_config(tmp_path)],
                    cwd=tmp_path,
                    timeout=300,
                    check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f'butd_caffe_to_mmext: caffemodel {src}'), line
    assert 'Traceback' not in proc.stderr
    assert ('is a FIFO, not a regular file' in line if kind == 'fifo' else
            "layer 'cls_score': blob 1: field 5 (float data) has wire type "
            '0 (varint)' in line), line
    assert not dst.exists()


def test_bad_paths_around_the_caffemodel(tmp_path, caffemodel, capsys):
    """A directory as source, a FIFO as vocabulary, a directory as output:
    one line each, nothing hangs."""
    from ..test_utils.test_caffemodel_fuzz import bounded
    with pytest.raises(CaffeModelError, match='is a directory, not a'):
        convert_butd_caffemodel(str(tmp_path), model_cfg=ARCH)
    fifo = tmp_path / 'objects_vocab.txt'
    os.mkfifo(fifo)
    with bounded(60), pytest.raises(InputFileError, match='is a FIFO'):
        convert_butd_caffemodel(
            str(caffemodel[0]), model_cfg=ARCH, objects_vocab=str(fifo))
    spec = importlib.util.spec_from_file_location('butd_tool', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([str(caffemodel[0]), str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f'butd_caffe_to_mmext: output {tmp_path} is a directory: give the '
        'checkpoint file to write (.pth)\n')
    assert issubclass(ButdConversionError, CheckpointConversionError)


def caffe_reference_forward(layers, image, rois):
    """The BUTD test network written layer by layer from test.prototxt
    against the raw caffe blobs (names spelled out for ARCH's block counts
    2, 1, 4, 1), with caffe's BatchNorm / Scale formulas."""
    blob = {
        n: [torch.from_numpy(np.asarray(b, np.float32)) for b in bl]
        for n, (_, bl) in layers.items()
    }

    def conv(name, x, stride=1, pad=0, dilation=1):
        w = blob[name]
        return F.conv2d(x, w[0], w[1] if len(w) > 1 else None, stride, pad,
                        dilation)

    def bn(suffix, x):
        mean, var, sf = blob['bn' + suffix]
        gamma, beta = blob['scale' + suffix]
        f = 0 if sf.item() == 0 else 1 / sf.item()
        s = (1, -1, 1, 1)
        x = (x - (mean * f).view(s)) / torch.sqrt((var * f).view(s) + 1e-5)
        return x * gamma.view(s) + beta.view(s)

    def block(tag, x, stride, dilation, first):
        short = bn(f'{tag}_branch1', conv(f'res{tag}_branch1', x, stride)) \
            if first else x
        y = F.relu(
            bn(f'{tag}_branch2a', conv(f'res{tag}_branch2a', x, stride)))
        y = F.relu(
            bn(f'{tag}_branch2b',
               conv(f'res{tag}_branch2b', y, 1, dilation, dilation)))
        y = bn(f'{tag}_branch2c', conv(f'res{tag}_branch2c', y))
        return F.relu(y + short)

    x = F.relu(bn('_conv1', conv('conv1', image, 2, 3)))
    x = F.max_pool2d(x, 3, 2, 0, ceil_mode=True)
    for tags, stride in ((['2a', '2b'], 1), (['3a'], 2),
                         (['4a', '4b1', '4b2', '4b3'], 2)):
        for i, tag in enumerate(tags):
            x = block(tag, x, stride if i == 0 else 1, 1, i == 0)
    res4 = x
    h = F.relu(conv('rpn_conv/3x3', res4, 1, 1))
    raw = conv('rpn_cls_score', h)
    n, c, hh, ww = raw.shape
    fg = torch.softmax(raw.view(n, 2, -1, ww), 1).view(n, c, hh, ww)[:,
                                                                     c // 2:]
    pooled = torch.ops.torchvision.roi_pool(res4, rois, 1 / 16, 14, 14)[0]
    pool5 = block('5a', pooled, 1, 2, True).mean(dim=(2, 3))
    cls_score = F.linear(pool5, *blob['cls_score'])
    label = cls_score.argmax(1)
    emb = blob['cls_embedding'][0][label]
    attr = F.linear(
        F.relu(F.linear(torch.cat([pool5, emb], 1), *blob['fc_attr'])),
        *blob['attr_score'])
    return dict(
        res4=res4,
        fg=fg,
        pool5=pool5,
        cls_prob=torch.softmax(cls_score, 1),
        attr_prob=torch.softmax(attr, 1),
        deltas=F.linear(pool5, *blob['bbox_pred']))


@pytest.mark.parametrize('planted', [False, True])
def test_converted_model_equals_layerwise_caffe_reference(caffemodel, planted):
    """Every converted key in the right place: the model on converted
    weights equals the network recomputed from the raw blobs by name. A
    planted mix-up of two same-shaped blocks (res4b1 <-> res4b2) still
    loads strictly, and is caught."""
    path, layers = caffemodel
    sd, _ = convert_butd_caffemodel(str(path), model_cfg=ARCH)
    if planted:
        a, b = 'backbone.layer3.1.', 'backbone.layer3.2.'
        for k in [k for k in sd if k.startswith(a)]:
            k2 = b + k[len(a):]
            sd[k], sd[k2] = sd[k2], sd[k]
    model = BUTDFasterRCNN(**ARCH).eval()
    model.load_state_dict(sd, strict=True)
    torch.manual_seed(1)
    image = torch.rand(1, 3, 100, 140) * 200 - 100
    rois = torch.tensor([[0., 0, 0, 139, 99], [0, 20, 10, 90, 70],
                         [0, 50.5, 33.2, 120.7, 98]])
    ref = caffe_reference_forward(layers, image, rois)
    with torch.no_grad():
        res4 = model.backbone(image)
        logits, _ = model.rpn_head(res4)
        pool5 = model.roi_head.pool_features(res4, rois)
        cls_score, attr_score, deltas = model.roi_head.predict(pool5)
    close = dict(rtol=1e-4, atol=1e-4)
    if planted:
        assert not torch.allclose(res4, ref['res4'], **close)
        return
    torch.testing.assert_close(res4, ref['res4'], **close)
    torch.testing.assert_close(torch.sigmoid(logits), ref['fg'], **close)
    torch.testing.assert_close(pool5, ref['pool5'], **close)
    torch.testing.assert_close(
        torch.softmax(cls_score, 1), ref['cls_prob'], **close)
    torch.testing.assert_close(
        torch.softmax(attr_score, 1), ref['attr_prob'], **close)
    torch.testing.assert_close(deltas, ref['deltas'], **close)
