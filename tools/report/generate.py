# Copyright (c) mmext contributors. All rights reserved.
"""Print the report a trained model generates for one study.

    python tools/report/generate.py FRONTAL.png LATERAL.png \
        configs/r2gen/r2gen_resnet101_iu-xray.py work_dirs/x/best.pth

IU X-ray configs take two views (frontal, lateral), MIMIC-CXR configs one.
The vocabulary comes from the checkpoint (no annotation file is read).
The steps are :mod:`mmext.apis.report_generation`'s.
"""
import argparse
import os.path as osp

from mmengine.config import DictAction

from mmext.apis.report_generation import (build_report_model,
                                          build_report_pipeline,
                                          check_study_views, generate_report,
                                          load_report_config)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Generate a radiology report for one study')
    p.add_argument('images', nargs='+', help='the study\'s view images')
    p.add_argument('config', help='model config')
    p.add_argument('checkpoint', help='trained checkpoint (.pth)')
    p.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for path in args.images:
        if not osp.isfile(path):
            raise FileNotFoundError(f'generate.py: image {path} not found')
    cfg = load_report_config(args.config, args.checkpoint, args.cfg_options)
    try:
        check_study_views(cfg, args.images)
    except ValueError as e:
        raise ValueError(f'generate.py: {e}') from None
    model = build_report_model(cfg, args.checkpoint, args.device)
    report = generate_report(model, build_report_pipeline(cfg), args.images)
    print(report)
    return report


if __name__ == '__main__':
    main()
