# Copyright (c) mmext contributors. All rights reserved.
"""Convert the BUTD caffemodel (VG Faster R-CNN) to an mmext checkpoint.

Reads ``resnet101_faster_rcnn_final.caffemodel`` without caffe, folds
BatchNorm + Scale (with caffe's scale factor), turns the blocked 24-channel
RPN classifier into 12 logits, keeps ``bbox_pred`` in caffe's class-major
layout, checks every key and shape against ``BUTDFasterRCNN`` and writes a
checkpoint plus ``<dst>.report.json`` (every blob used or ignored, why).
The logic is in :mod:`mmext.models.utils.checkpoint_convert.butd_caffe`.

Example::

    python tools/model_converters/butd_caffe_to_mmext.py \\
        resnet101_faster_rcnn_final.caffemodel \\
        pretrain_pth/butd_faster-rcnn_r101-caffe-c4_vg.pth \\
        --config configs/butd/butd_faster-rcnn_r101-caffe-c4_vg.py \\
        --objects-vocab data/genome/1600-400-20/objects_vocab.txt \\
        --attributes-vocab data/genome/1600-400-20/attributes_vocab.txt
"""
import argparse
import json
import os
import sys

from mmext.models.utils.checkpoint_convert import CheckpointConversionError
from mmext.models.utils.checkpoint_convert.butd_caffe import \
    convert_butd_caffemodel
from mmext.utils.fileio import InputFileError, check_regular_file


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src', help='resnet101_faster_rcnn_final.caffemodel')
    p.add_argument('dst', help='output mmext checkpoint (.pth)')
    p.add_argument(
        '--config',
        help='mmext config whose model the weights '
        'must fit (default: the released ResNet-101 model)')
    p.add_argument('--objects-vocab', help='objects_vocab.txt (1600 lines)')
    p.add_argument(
        '--attributes-vocab', help='attributes_vocab.txt (400 lines)')
    return p.parse_args(argv)


def main(argv=None):
    """Exit 0 with the checkpoint and report written, or 1 with one line
    naming the bad file (caffemodel, config, vocabulary, destination)."""
    args = parse_args(argv)
    try:
        model_cfg = None
        if args.config:
            from mmengine.config import Config
            check_regular_file(args.config, 'config')  # a FIFO would block
            model_cfg = Config.fromfile(args.config).model.to_dict()
        if os.path.isdir(args.dst):
            raise InputFileError(f'output {args.dst} is a directory: give '
                                 'the checkpoint file to write (.pth)')
        sd, report = convert_butd_caffemodel(args.src, args.dst, model_cfg,
                                             args.objects_vocab,
                                             args.attributes_vocab)
        with open(args.dst + '.report.json', 'w') as f:
            json.dump(report, f, indent=1)
    except (CheckpointConversionError, InputFileError, OSError) as e:
        # CaffeModelError is an InputFileError, ButdConversionError a
        # CheckpointConversionError; OSError: missing or unwritable paths
        print(f'butd_caffe_to_mmext: {e}', file=sys.stderr)
        return 1
    for item in report['ignored']:
        print(f"ignored {item['layer']} {item['shapes']}: {item['reason']}")
    print(f"wrote {args.dst}: {len(sd)} tensors from {len(report['used'])} "
          f"caffe layers, {len(report['ignored'])} layers ignored; report "
          f'{args.dst}.report.json')
    return 0


if __name__ == '__main__':
    sys.exit(main())
