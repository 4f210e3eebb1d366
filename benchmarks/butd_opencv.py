# Copyright (c) mmext contributors. All rights reserved.
"""The BUTD test network for OpenCV DNN: caffemodel + prototxt writers.

``butd_extract.py --opencv`` times mmext against OpenCV's own caffe importer
(``cv2.dnn.readNetFromCaffe``, which fuses Conv + BatchNorm + Scale + ReLU)
on one generated caffemodel. Both files are written from mmext's layer table
(:func:`~mmext.models.utils.checkpoint_convert.butd_caffe._layer_plan`, the
one the converter checks real caffemodels against), so the caffe names,
strides (on ``branch2a``), res5 dilation and blob shapes cannot drift from
the converter. The prototxt stops where OpenCV stops being the reference:

* inputs ``data`` (the caffe-preprocessed image) and ``rois`` (R, 5) (fixed
  ROIs: mmext's proposals; OpenCV's ``Proposal`` layer has no min-size
  filter, so proposals are compared as pre-proposal blobs instead);
* outputs ``rpn_cls_prob_reshape`` / ``rpn_bbox_pred`` (pre-proposal) and
  ``cls_prob`` / ``bbox_pred`` / ``pool5`` of the res5 head on ``rois``.
  The attribute branch (caffe ``ArgMax`` + ``Embed``, < 0.1% of the FLOPs)
  has no OpenCV importer and is left out.

The caffemodel is serialised directly (protobuf wire format, packed float
blobs; the python ``protobuf`` runtime needs minutes for 60 M floats).
"""
import numpy as np

__all__ = ['random_caffe_layers', 'write_caffemodel', 'write_prototxt']


def _varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number, payload):
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _blob(array):
    array = np.ascontiguousarray(array, dtype='<f4')
    dims = b''.join(_varint(d) for d in array.shape)
    return _field(7, _field(1, dims)) + _field(5, array.tobytes())


def write_caffemodel(path, layers, name='ResNet-101'):
    """``layers``: {caffe name: (type, [float32 arrays])} → NetParameter
    with one ``layer`` (field 100) per entry."""
    with open(path, 'wb') as f:
        f.write(_field(1, name.encode()))
        for lname, (kind, blobs) in layers.items():
            body = _field(1, lname.encode()) + _field(2, kind.encode())
            body += b''.join(_field(7, _blob(b)) for b in blobs)
            f.write(_field(100, body))


def random_caffe_layers(arch=None, seed=0):
    """Random caffe blobs of the BUTD test network with bounded activations
    (He-scaled convs, BatchNorm statistics and Scale near identity)."""
    from mmext.models.utils.checkpoint_convert.butd_caffe import \
        expected_caffe_layers
    rng = np.random.RandomState(seed)
    out = {}
    for name, spec in expected_caffe_layers(arch).items():
        kind, blobs = spec['type'], []
        for i, shape in enumerate(spec['shapes']):
            if kind == 'BatchNorm':  # mean, var, scale factor
                b = [
                    rng.randn(*shape) * 0.1,
                    rng.uniform(0.5, 2, shape),
                    np.ones(shape)
                ][i]
            elif kind == 'Scale':  # gamma, beta
                b = rng.uniform(0.3, 0.8, shape) if i == 0 else \
                    rng.randn(*shape) * 0.05
            elif i == 0 and len(shape) > 1:  # weights
                fan_in = int(np.prod(shape[1:]))
                b = rng.randn(*shape) * np.sqrt(2 / fan_in)
            else:  # biases, embeddings
                b = rng.randn(*shape) * 0.05
            if name == 'rpn_bbox_pred':  # anchor-sized proposals: the
                b = b * 0.01  # released model's 300 survive NMS, as here
            blobs.append(b.astype(np.float32))
        out[name] = (kind, blobs)
    return out


def _conv(name, bottom, out, k, stride=1, pad=0, dilation=1, bias=False):
    extra = f' dilation: {dilation}' if dilation > 1 else ''
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}"'
            f' top: "{name}" convolution_param {{ num_output: {out} '
            f'kernel_size: {k} stride: {stride} pad: {pad}{extra} '
            f'bias_term: {str(bias).lower()} }} }}')


def _bn_scale(suffix, top):
    return (f'layer {{ name: "bn{suffix}" type: "BatchNorm" bottom: "{top}" '
            f'top: "{top}" batch_norm_param {{ use_global_stats: true }} }}\n'
            f'layer {{ name: "scale{suffix}" type: "Scale" bottom: "{top}" '
            f'top: "{top}" scale_param {{ bias_term: true }} }}')


def _relu(top):
    return (f'layer {{ name: "{top}_relu" type: "ReLU" bottom: "{top}" '
            f'top: "{top}" }}')


def _block(tag, bottom, mid, project, stride, dilation):
    """Caffe bottleneck ``res{tag}``: stride on branch2a, sum, ReLU."""
    lines = []
    if project:
        lines += [
            _conv(f'res{tag}_branch1', bottom, mid * 4, 1, stride),
            _bn_scale(f'{tag}_branch1', f'res{tag}_branch1')
        ]
    short = f'res{tag}_branch1' if project else bottom
    x = bottom
    for br, k, out, s in (('2a', 1, mid, stride), ('2b', 3, mid, 1),
                          ('2c', 1, mid * 4, 1)):
        name = f'res{tag}_branch{br}'
        pad = dilation if k == 3 else 0
        lines += [
            _conv(name, x, out, k, s, pad, dilation if k == 3 else 1),
            _bn_scale(f'{tag}_branch{br}', name)
        ]
        if br != '2c':
            lines.append(_relu(name))
        x = name
    lines.append(f'layer {{ name: "res{tag}" type: "Eltwise" bottom: "{short}"'
                 f' bottom: "{x}" top: "res{tag}" }}')
    lines.append(_relu(f'res{tag}'))
    return lines, f'res{tag}'


def write_prototxt(path, arch, image_hw, num_rois):
    """The BUTD test network up to the pre-proposal blobs and the res5 head
    on ``num_rois`` fixed ROIs, for input ``image_hw`` (caffe-preprocessed).
    """
    from mmext.models.detectors.butd.resnet_caffe import caffe_block_names
    from mmext.models.utils.checkpoint_convert.butd_caffe import _arch
    a = _arch(arch)
    h, w = image_hw
    c = a['base_channels']
    lines = [
        'name: "ResNet-101"',
        'layer { name: "input" type: "Input" top: "data" top: "rois" '
        f'input_param {{ shape {{ dim: 1 dim: 3 dim: {h} dim: {w} }} '
        f'shape {{ dim: {num_rois} dim: 5 }} }} }}',
        _conv('conv1', 'data', c, 7, 2, 3),
        _bn_scale('_conv1', 'conv1'),
        _relu('conv1'),
        'layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" '
        'pooling_param { pool: MAX kernel_size: 3 stride: 2 } }',
    ]
    x = 'pool1'
    for s, n in enumerate(a['stage_blocks']):
        mid = c * 2**s
        if s == 3:  # the head: ROI pooling at 1/16, res5 dilated
            c4 = x
            lines.append(
                f'layer {{ name: "roi_pool5" type: "ROIPooling" bottom: '
                f'"{x}" bottom: "rois" top: "roi_pool5" roi_pooling_param '
                '{ pooled_w: 14 pooled_h: 14 spatial_scale: 0.0625 } }')
            x = 'roi_pool5'
        for i, b in enumerate(caffe_block_names(n)):
            stride = 2 if i == 0 and s in (1, 2) else 1
            block, x = _block(f'{s + 2}{b}', x, mid, i == 0, stride,
                              2 if s == 3 else 1)
            lines += block
    na, nc = a['num_anchors'], a['num_classes']
    lines += [
        _conv('rpn_conv/3x3', c4, a['rpn_channels'], 3, 1, 1, bias=True),
        _relu('rpn_conv/3x3'),
        _conv('rpn_cls_score', 'rpn_conv/3x3', 2 * na, 1, bias=True),
        _conv('rpn_bbox_pred', 'rpn_conv/3x3', 4 * na, 1, bias=True),
        'layer { name: "rpn_cls_score_reshape" type: "Reshape" bottom: '
        '"rpn_cls_score" top: "rpn_cls_score_reshape" reshape_param { shape '
        '{ dim: 0 dim: 2 dim: -1 dim: 0 } } }',
        'layer { name: "rpn_cls_prob" type: "Softmax" bottom: '
        '"rpn_cls_score_reshape" top: "rpn_cls_prob" }',
        'layer { name: "rpn_cls_prob_reshape" type: "Reshape" bottom: '
        '"rpn_cls_prob" top: "rpn_cls_prob_reshape" reshape_param { shape '
        f'{{ dim: 0 dim: {2 * na} dim: -1 dim: 0 }} }} }}',
        f'layer {{ name: "pool5" type: "Pooling" bottom: "{x}" top: "pool5" '
        'pooling_param { pool: AVE global_pooling: true } }',
        f'layer {{ name: "cls_score" type: "InnerProduct" bottom: "pool5" '
        f'top: "cls_score" inner_product_param {{ num_output: {nc} }} }}',
        f'layer {{ name: "bbox_pred" type: "InnerProduct" bottom: "pool5" '
        f'top: "bbox_pred" inner_product_param {{ num_output: {4 * nc} }} }}',
        'layer { name: "cls_prob" type: "Softmax" bottom: "cls_score" '
        'top: "cls_prob" }',
    ]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


OPENCV_OUTPUTS = ('rpn_cls_prob_reshape', 'rpn_bbox_pred', 'pool5', 'cls_prob',
                  'bbox_pred')


def _vm_hwm_mb():
    """Peak RSS of this process since exec (``ru_maxrss`` can carry the
    forking parent's peak across exec)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def opencv_worker(prototxt, caffemodel, inputs, out, threads, reps):
    """Child process: ``readNetFromCaffe``, one warm-up and ``reps`` timed
    forwards of ``inputs`` (npz: data, rois); writes the outputs and
    ``seconds`` (mean, as butd_extract's stages), ``times``,
    ``load_seconds``, ``peak_rss_mb`` and ``version`` to ``out``."""
    import time

    import cv2
    if not hasattr(cv2.dnn, 'readNetFromCaffe'):
        raise SystemExit(
            f'OpenCV {cv2.__version__} has no caffe importer (removed in '
            '5.x): pass --opencv-path DIR with OpenCV 4.x, e.g. pip install '
            '--target DIR opencv-python-headless==4.11.0.86')
    cv2.setNumThreads(threads)
    start = time.perf_counter()
    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    load = time.perf_counter() - start
    arrays = np.load(inputs)
    times = []
    for i in range(reps + 1):
        start = time.perf_counter()
        net.setInput(arrays['data'], 'data')
        net.setInput(arrays['rois'], 'rois')
        outs = net.forward(list(OPENCV_OUTPUTS))
        if i:
            times.append(time.perf_counter() - start)
    np.savez(
        out,
        seconds=float(np.mean(times)),
        times=np.array(times),
        load_seconds=load,
        version=cv2.__version__,
        peak_rss_mb=_vm_hwm_mb(),
        **dict(zip(OPENCV_OUTPUTS, outs)))


if __name__ == '__main__':
    import sys
    opencv_worker(*sys.argv[1:5], int(sys.argv[5]), int(sys.argv[6]))
