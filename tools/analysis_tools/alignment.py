# Copyright (c) mmext contributors. All rights reserved.
"""Layer-by-layer representation alignment (mutual k-NN, CKA, SVCCA, ...).

One model: its two streams (ViLBERT: text vs vision layers and co-attention
outputs, by default) or a layer x layer map of the layers given. Two models
(``--config2 --checkpoint2``): e.g. TRAR-ViT vs ViT on the same images.
Writes alignment.json / alignment.csv, heatmap_<metric>.png and
per_layer.png to --out.

Defaults work on every supported model family (ViT, TRAR-ViT, TinyViT,
ResNet, SE-ResNet, R2Gen's extractor, ViLBERT pretraining and fine-tuned
checkpoints): the taps are every backbone block (both streams of a ViLBERT)
and ``--pooling auto`` pools each layer by its output: feature maps by the
mean over H x W, token sequences by their CLS token when they start with
one, else by the mean over tokens. The data are read in measurement mode:
ViLBERT's ITM caption swaps and MLM / region / patch masking and random
flips are off, so two checkpoints of one config see identical inputs.

Examples:
    python tools/analysis_tools/alignment.py \
        configs/vilbert/vilbert_vit-base-p16-bert-base_1xb20-pretrain_cc.py \
        work_dirs/vilbert/epoch_7.pth --split val --max-samples 1024 \
        --out work_dirs/al
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

from mmext.analysis import POOLINGS, run_alignment
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
    p.add_argument(
        '--pooling',
        choices=POOLINGS,
        default='auto',
        help='auto: feature maps -> mean over H x W, token sequences -> '
        'CLS token if they start with one, else mean over tokens; cls / '
        'mean force that for token sequences')
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
    if result['measurement_mode']:
        print('measurement mode: ' + ', '.join(result['measurement_mode']))
    if result['input_differences']:
        print('note: the two configs feed different inputs (e.g. sizes): ' +
              '; '.join(result['input_differences']))
    print(f'{len(result["records"])} layer pairs on '
          f'{result["num_samples"]} samples -> {args.out}/alignment.json, '
          'alignment.csv, heatmap_*.png, per_layer.png')


if __name__ == '__main__':
    main()
