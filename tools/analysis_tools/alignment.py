# Copyright (c) mmext contributors. All rights reserved.
"""Layer-by-layer representation alignment (mutual k-NN, CKA, SVCCA, ...).

One model: its two streams (ViLBERT: text vs vision layers and co-attention
outputs, by default) or a layer x layer map of the layers given. Two models
(``--config2 --checkpoint2``): e.g. TRAR-ViT vs ViT on the same images.
Writes alignment.json / alignment.csv, heatmap_<metric>.png and
per_layer.png to --out.

Examples:
    python tools/analysis_tools/alignment.py \
        configs/vilbert/vilbert_vit-base-p16-bert-base_1xb20-pretrain_cc.py \
        work_dirs/vilbert/epoch_7.pth --split val --max-samples 1024 \
        --cfg-options val_dataloader.collate_fn.itm_prob=0 --out work_dirs/al
    python tools/analysis_tools/alignment.py \
        configs/trar_vit/trar-vit-base-p16_8xb64-in21k-pre_cifar10.py \
        trar.pth \
        --config2 configs/trar_vit/vit-base-p16_8xb64-in21k-pre_cifar10.py \
        --checkpoint2 vit.pth --layers backbone.layers.0-11 \
        --layers2 backbone.layers.0-11 --out work_dirs/trar_vs_vit
"""
import argparse
import sys

from mmengine.config import DictAction

from mmext.analysis import run_alignment
from mmext.evaluation.metrics.alignment import (ALIGNMENT_METRICS,
                                                DEFAULT_METRICS)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint', help="weights ('none': initial weights)")
    p.add_argument('--config2', help='second model (side b)')
    p.add_argument('--checkpoint2')
    p.add_argument(
        '--layers',
        nargs='+',
        help='side a taps: module paths '
        '(backbone.layers.0-11, backbone.layer1, x.y:0 for a '
        'tuple output) or per-layer output names (text.*)')
    p.add_argument('--layers2', nargs='+', help='side b taps')
    p.add_argument('--pooling', choices=['cls', 'mean'], default='cls')
    p.add_argument('--split', choices=['train', 'val', 'test'], default='test')
    p.add_argument('--max-samples', type=int, help='first N samples')
    p.add_argument('--batch-size', type=int)
    p.add_argument(
        '--metrics',
        nargs='+',
        choices=sorted(ALIGNMENT_METRICS),
        default=list(DEFAULT_METRICS))
    p.add_argument(
        '--pairs',
        choices=['all', 'matched'],
        default='all',
        help='every layer of a with every layer of b, or the '
        'i-th with the i-th')
    p.add_argument('--k', type=int, default=10, help='k-NN neighbours')
    p.add_argument(
        '--no-normalize',
        action='store_true',
        help='skip the L2 normalisation of each vector')
    p.add_argument(
        '--svcca-keep',
        type=float,
        default=10,
        help='SVCCA components: a count (10) or a variance '
        'share (0.99)')
    p.add_argument('--rbf-sigma', type=float, default=1.0)
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--no-progress', action='store_true')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='overrides for both configs')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if (args.config2 is None) != (args.checkpoint2 is None):
        sys.exit('give --config2 and --checkpoint2 together')
    keep = args.svcca_keep
    keep = int(keep) if keep >= 1 else keep

    def ckpt(path):
        return None if path in (None, 'none') else path

    try:
        result = run_alignment(
            args.config,
            ckpt(args.checkpoint),
            args.out,
            layers=args.layers,
            config2=args.config2,
            checkpoint2=ckpt(args.checkpoint2),
            layers2=args.layers2,
            pooling=args.pooling,
            split=args.split,
            max_samples=args.max_samples,
            batch_size=args.batch_size,
            metrics=args.metrics,
            pairs=args.pairs,
            cfg_options=args.cfg_options,
            progress=not args.no_progress,
            k=args.k,
            normalize=not args.no_normalize,
            svcca_keep=keep,
            rbf_sigma=args.rbf_sigma)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f'alignment: {e}')
    print(f'{len(result["records"])} layer pairs on '
          f'{result["num_samples"]} samples -> {args.out}/alignment.json, '
          'alignment.csv, heatmap_*.png, per_layer.png')


if __name__ == '__main__':
    main()
