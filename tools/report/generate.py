# Copyright (c) mmext contributors. All rights reserved.
"""Print the report a trained model generates for one study.

    python tools/report/generate.py FRONTAL.png LATERAL.png \
        configs/r2gen/r2gen_resnet101_iu-xray.py work_dirs/x/best.pth

IU X-ray configs take two views (frontal, lateral), MIMIC-CXR configs one.
The vocabulary comes from the checkpoint (no annotation file is read).
"""
import argparse
import inspect
import os.path as osp
import sys

from mmengine.config import Config, DictAction

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
from mmext.apis import (build_report_pipeline, generate_report,  # noqa: E402
                        restore_vocab_from_checkpoint)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Generate a radiology report for one study')
    p.add_argument('images', nargs='+', help='the study\'s view images')
    p.add_argument('config', help='model config')
    p.add_argument('checkpoint', help='trained checkpoint (.pth)')
    p.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, key=value')
    return p.parse_args(argv)


def expected_views(cfg):
    """Views per study the config's data set uses (IU X-ray 2, MIMIC 1)."""
    from mmext.registry import DATASETS
    ds = cfg.test_dataloader.dataset
    if 'num_views' in ds:
        return ds.num_views
    cls = DATASETS.get(ds.type)
    default = inspect.signature(cls.__init__).parameters.get('num_views')
    return default.default if default is not None else None


def build_model(cfg, checkpoint, device='cpu'):
    """Model of ``cfg`` with ``checkpoint``'s weights, in eval mode."""
    from mmengine.runner import load_checkpoint

    from mmext.registry import MODELS
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor'):
        # the Runner merges the top-level data_preprocessor (normalisation)
        # into the model; do the same or the images are not normalised
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    return model.to(device).eval()


def main(argv=None):
    args = parse_args(argv)
    for path in args.images:
        if not osp.isfile(path):
            raise FileNotFoundError(f'generate.py: image {path} not found')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    from mmengine.registry import init_default_scope

    from mmext.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    init_default_scope(cfg.get('default_scope', 'mmext'))
    restore_vocab_from_checkpoint(cfg, args.checkpoint)
    views = expected_views(cfg)
    if views is not None and views != len(args.images):
        raise ValueError(
            f'generate.py: {osp.basename(args.config)} uses {views} view(s) '
            f'per study ({cfg.test_dataloader.dataset.type}), got '
            f'{len(args.images)} image(s)')
    model = build_model(cfg, args.checkpoint, args.device)
    report = generate_report(model, build_report_pipeline(cfg), args.images)
    print(report)
    return report


if __name__ == '__main__':
    main()
