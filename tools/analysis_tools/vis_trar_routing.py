# Copyright (c) mmext contributors. All rights reserved.
"""Save TRAR-ViT routing weights (JSON) and attention-span pictures (PNG).

For one image: the routing weights α over the span orders of every routed
layer, and, for a chosen query patch, the *effective span* of each layer,
``Σ_l α_l · [key patch inside span l]`` (1 where every order reaches, the
share of weight elsewhere).

Example:
    python tools/analysis_tools/vis_trar_routing.py demo.jpg \
        configs/trar_vit/trar-vit-b16_in21k-pre_cifar10-224.py ckpt.pth \
        --out work_dirs/routing --query 7 7
"""
import argparse
import contextlib
import json
import os
import os.path as osp
import sys

import numpy as np
import torch
from mmengine.config import DictAction

sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmext.apis.inference import init_classifier, predict_topk  # noqa: E402
from mmext.models.backbones import TRARViT  # noqa: E402
from mmext.models.layers import (SpanRoutedAttention,  # noqa: E402
                                 build_span_masks)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='a TRAR-ViT config')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument(
        '--query',
        type=int,
        nargs=2,
        metavar=('ROW', 'COL'),
        help='query patch on the grid (default: the centre)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, as in tools/train.py')
    return parser.parse_args(argv)


def collect_routing(inferencer, image):
    """Run the model on ``image``; return (grid, RGB input, layers, preds)."""
    backbone = inferencer.model.backbone
    if not isinstance(backbone, TRARViT):
        raise TypeError(f'the config\'s backbone is {type(backbone).__name__}'
                        ', not TRARViT; give a configs/trar_vit/trar-* '
                        'config')
    seen, hooks = {}, []
    for i, layer in enumerate(backbone.layers):
        if isinstance(layer.attn, SpanRoutedAttention) and layer.attn.router:
            hooks.append(layer.attn.router.register_forward_hook(
                lambda m, a, out, i=i: seen.__setitem__(i, out[0].tolist())))
    hooks.append(backbone.patch_embed.register_forward_hook(
        lambda m, a, out: seen.__setitem__('grid', list(out[1]))))
    hooks.append(backbone.register_forward_pre_hook(
        lambda m, a: seen.__setitem__('input', a[0][0].detach().cpu())))
    try:
        preds = predict_topk(inferencer, image, topk=5)
    finally:
        for h in hooks:
            h.remove()
    layers = []
    for i, layer in enumerate(backbone.layers):
        orders = list(backbone.layer_orders[i] or [0])
        layers.append(dict(layer=i, orders=orders,
                           alpha=seen.get(i, [1.0])))
    pre = inferencer.model.data_preprocessor
    rgb = seen['input'] * pre.std.cpu() + pre.mean.cpu()
    rgb = rgb.clamp(0, 255).permute(1, 2, 0).numpy().astype(np.uint8)
    return seen['grid'], rgb, layers, preds


def effective_span(grid, orders, alpha, query):
    """(H, W) map Σ_l α_l · [patch within span l of the query patch]."""
    masks = build_span_masks(grid, orders, num_extra_tokens=0).float()
    q = query[0] * grid[1] + query[1]
    span = torch.einsum('l,ln->n', torch.tensor(alpha), masks[:, q])
    return span.reshape(grid).numpy()


def draw(path, rgb, grid, layers, query, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    routed = [lay for lay in layers if len(lay['orders']) > 1]
    cols = 4
    rows = 1 + -(-len(routed) // cols)
    fig = plt.figure(figsize=(3 * cols, 3 * rows + 0.5))
    ax = fig.add_subplot(rows, 1, 1)
    orders = sorted({k for lay in routed for k in lay['orders']})
    bottom = np.zeros(len(routed))
    for k in orders:
        share = np.array([
            lay['alpha'][lay['orders'].index(k)] if k in lay['orders'] else 0
            for lay in routed
        ])
        ax.bar([str(lay['layer']) for lay in routed], share, bottom=bottom,
               label=f'order {k}' + (' (global)' if k == 0 else ''))
        bottom += share
    ax.set_xlabel('layer')
    ax.set_ylabel('routing weight α')
    ax.legend(fontsize=7, loc='upper right')
    ax.set_title(title, fontsize=9)
    h, w = rgb.shape[:2]
    for n, lay in enumerate(routed):
        ax = fig.add_subplot(rows, cols, cols + n + 1)
        span = effective_span(grid, lay['orders'], lay['alpha'], query)
        ax.imshow(rgb)
        ax.imshow(span, cmap='viridis', alpha=0.55, vmin=0, vmax=1,
                  extent=(0, w, h, 0), interpolation='nearest')
        ph, pw = h / grid[0], w / grid[1]
        ax.add_patch(plt.Rectangle((query[1] * pw, query[0] * ph), pw, ph,
                                   fill=False, edgecolor='red', lw=1.5))
        ax.set_title(f'layer {lay["layer"]}: α=' + ','.join(
            f'{a:.2f}' for a in lay['alpha']), fontsize=7)
        ax.axis('off')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    for name, path in (('image', args.image), ('config', args.config),
                       ('checkpoint', args.checkpoint)):
        if not osp.isfile(path):
            sys.exit(f'{name} {path} not found')
    with contextlib.redirect_stdout(sys.stderr):  # mmengine's load log
        inferencer = init_classifier(args.config, args.checkpoint,
                                     args.device, args.cfg_options)
    try:
        grid, rgb, layers, preds = collect_routing(inferencer, args.image)
    except TypeError as e:
        sys.exit(str(e))
    query = args.query or [grid[0] // 2, grid[1] // 2]
    if not (0 <= query[0] < grid[0] and 0 <= query[1] < grid[1]):
        sys.exit(f'--query {query[0]} {query[1]} is outside the '
                 f'{grid[0]}x{grid[1]} patch grid')
    for lay in layers:
        lay['effective_span'] = effective_span(
            grid, lay['orders'], lay['alpha'], query).round(4).tolist()
    os.makedirs(args.out, exist_ok=True)
    stem = osp.splitext(osp.basename(args.image))[0]
    record = dict(image=args.image, config=args.config,
                  checkpoint=args.checkpoint, grid=grid, query=query,
                  predictions=preds, layers=layers)
    json_path = osp.join(args.out, f'{stem}_routing.json')
    with open(json_path, 'w') as f:
        json.dump(record, f, indent=1)
    top = preds[0]
    png_path = osp.join(args.out, f'{stem}_spans.png')
    draw(png_path, rgb, grid, layers, query,
         f'{stem}: top-1 {top["name"] or top["index"]} ({top["score"]:.2f}),'
         f' query patch {tuple(query)}')
    print(f'routing weights -> {json_path}\nspan picture -> {png_path}')


if __name__ == '__main__':
    main()
