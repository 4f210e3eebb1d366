# Copyright (c) mmext contributors. All rights reserved.
"""FLOPs and parameters of a config's whole model, part by part.

mmpretrain's ``get_flops.py`` with the same command line; it counts the full
model (ViLBERT: both streams + co-attention; R2Gen: extractor, encoder, one
decoding step and a full report; BUTD: backbone, RPN, box head per image)
and needs no data or weight files (see :mod:`mmext.analysis.complexity`).

Examples:
    python tools/analysis_tools/get_flops.py \
        configs/flowers/resnet50_1xb32-ft_flowers17.py --shape 224 224
    python tools/analysis_tools/get_flops.py \
        configs/r2gen/r2gen_resnet101_1xb16_iu-xray.py --max-steps 60
    python tools/analysis_tools/get_flops.py \
        configs/butd/butd_faster-rcnn_r101-caffe-c4_vg.py --shape 600 800
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config, DictAction


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='config file path')
    p.add_argument(
        '--shape',
        type=int,
        nargs='+',
        help='input image size: H W, or one number for a square (default: '
        "the config's test size)")
    p.add_argument(
        '--text-len',
        type=int,
        help='ViLBERT text tokens (default: the '
        "pipeline's max_length)")
    p.add_argument(
        '--num-regions',
        type=int,
        help='ViLBERT regions mode: regions '
        "(default: the pipeline's max_regions)")
    p.add_argument(
        '--num-views',
        type=int,
        help='R2Gen views per study (default: '
        'IU X-ray 2, else 1)')
    p.add_argument(
        '--max-steps',
        type=int,
        help='R2Gen tokens of a full report '
        '(default: max_seq_length)')
    p.add_argument(
        '--vocab-size',
        type=int,
        help='R2Gen vocabulary size (default: '
        'from annotation.json, else the released model\'s)')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, xxx=yyy')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.config):
        sys.exit(f'get_flops: config {args.config} not found; give a '
                 'configs/<family>/<name>.py path')
    shape = None
    if args.shape:
        if len(args.shape) > 2 or min(args.shape) < 1:
            sys.exit(f'get_flops: --shape {args.shape}: give H W or one '
                     'size, e.g. --shape 224 224')
        shape = (3, args.shape[0], args.shape[-1])
    from mmext.analysis.complexity import model_complexity
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    options = dict(
        text_len=args.text_len,
        num_regions=args.num_regions,
        num_views=args.num_views,
        max_steps=args.max_steps,
        vocab_size=args.vocab_size)
    result = model_complexity(cfg, shape, **options)
    print(result.table())
    print('FLOPs: one multiply-add = 1 (mmengine / fvcore); element-wise '
          'ops are not counted')


if __name__ == '__main__':
    main()
