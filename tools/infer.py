# Copyright (c) mmext contributors. All rights reserved.
"""Run a trained model of any mmext system on a few samples.

The config's model type picks the task (logic in
:mod:`mmext.apis.inferencers`); results are printed as a table, ``--out``
writes them as JSON.

Examples::

    # classification: top-k classes of an image
    python tools/infer.py demo.jpg \\
        configs/tiny/resnet18_1xb8-scratch_tiny-64px.py \\
        work_dirs/tiny/epoch_4.pth --topk 3
    # ViLBERT: image-text matching score (pre-trained) or the task label
    python tools/infer.py a.jpg b.jpg CONFIG CKPT --text "a red square"
    python tools/infer.py CONFIG CKPT --pairs pairs.tsv   # image<TAB>text
    # R2Gen: a report per study folder (or the view files of one study)
    python tools/infer.py data/iu_xray/images/CXR1_IM-0001 CONFIG CKPT \\
        --chexpert
    # BUTD: regions of an image, drawn into --out-dir
    python tools/infer.py street.jpg CONFIG CKPT --out-dir vis
"""
import argparse
import contextlib
import json
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('Examples::')[1])
    parser.add_argument(
        'inputs',
        nargs='*',
        help='images (classification, ViLBERT, BUTD), study folders or '
        'the view files of one study (R2Gen)')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--batch-size', type=int, default=1, help='samples per forward')
    parser.add_argument('--out', help='write the results to this JSON file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, as in tools/train.py')
    cls = parser.add_argument_group('classification')
    cls.add_argument('--topk', type=int, default=5, help='classes shown')
    vil = parser.add_argument_group('ViLBERT')
    vil.add_argument('--text', help='text paired with every image')
    vil.add_argument('--pairs', help='file of image<TAB>text lines')
    vil.add_argument(
        '--features',
        metavar='DIR',
        help='save per-layer features and co-attention maps (<i>.npz)')
    rep = parser.add_argument_group('R2Gen')
    rep.add_argument(
        '--chexpert',
        action='store_true',
        help='label the reports (CheXpert-14)')
    rep.add_argument(
        '--decode', choices=['beam', 'greedy'], help='default: the config')
    rep.add_argument('--beam-size', type=int, help='default: the config')
    butd = parser.add_argument_group('BUTD')
    butd.add_argument('--out-dir', help='draw the regions into DIR/<stem>.png')
    butd.add_argument('--min-boxes', type=int)
    butd.add_argument('--max-boxes', type=int)
    butd.add_argument('--conf-thresh', type=float)
    from mmext.apis.cli import add_debug_argument
    add_debug_argument(parser)
    return parser.parse_args(argv)


def main(argv=None):
    from mmext.apis.cli import run_cli
    from mmext.apis.inferencers.cli import (format_results, run_inference,
                                            to_json)
    args = parse_args(argv)

    def infer():
        # mmengine logs and progress bars go to stdout: keep it for results
        with contextlib.redirect_stdout(sys.stderr):
            return run_inference(args)

    try:
        task, results = run_cli(infer, debug=args.debug)
    except ValueError as e:  # option / task mismatches (check_inputs)
        if args.debug:
            raise
        sys.exit(str(e))
    print(format_results(task, results))
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump(dict(task=task, results=to_json(results)), f, indent=2)
    return task, results


if __name__ == '__main__':
    main()
