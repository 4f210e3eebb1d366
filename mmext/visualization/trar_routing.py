# Copyright (c) mmext contributors. All rights reserved.
"""TRAR-ViT routing weights and effective attention spans of one image.

For one image: the routing weights α over the span orders of every routed
layer, and, for a chosen query patch, the *effective span* of each layer,
``Σ_l α_l · [key patch inside span l]`` (1 where every order reaches, the
share of weight elsewhere). mmpretrain's visualizers draw class activation
maps and predictions; they know nothing of routed spans, so this module
collects them with forward hooks and draws them with matplotlib. The
command line is ``tools/analysis_tools/vis_trar_routing.py``.
"""
import json
import os
import os.path as osp

import numpy as np
import torch

from mmext.models.backbones import TRARViT
from mmext.models.layers import SpanRoutedAttention, build_span_masks

__all__ = [
    'collect_trar_routing', 'effective_span', 'draw_trar_routing',
    'save_trar_routing'
]


def collect_trar_routing(inferencer, image):
    """Run the inferencer's model on ``image`` and record its routing.

    Args:
        inferencer (ImageClassificationInferencer): From
            :func:`mmext.apis.init_classifier`, with a ``TRARViT`` backbone.
        image (str | np.ndarray): The image.

    Returns:
        tuple: ``(grid, rgb, layers, preds)``: the patch grid ``[H, W]``,
        the model's input as an (H, W, 3) uint8 RGB array, one
        ``dict(layer, orders, alpha)`` per layer (``alpha=[1.0]`` for an
        unrouted layer) and the top-5 predictions.

    Raises:
        TypeError: The backbone is not a ``TRARViT``.
    """
    from mmext.apis.inference import predict_topk
    backbone = inferencer.model.backbone
    if not isinstance(backbone, TRARViT):
        raise TypeError(f'the config\'s backbone is {type(backbone).__name__}'
                        ', not TRARViT; give a configs/trar_vit/trar-* '
                        'config')
    seen, hooks = {}, []
    for i, layer in enumerate(backbone.layers):
        if isinstance(layer.attn, SpanRoutedAttention) and layer.attn.router:
            hooks.append(
                layer.attn.router.register_forward_hook(
                    lambda m, a, out, i=i: seen.__setitem__(
                        i, out[0].tolist())))
    hooks.append(
        backbone.patch_embed.register_forward_hook(
            lambda m, a, out: seen.__setitem__('grid', list(out[1]))))
    hooks.append(
        backbone.register_forward_pre_hook(
            lambda m, a: seen.__setitem__('input', a[0][0].detach().cpu())))
    try:
        preds = predict_topk(inferencer, image, topk=5)
    finally:
        for h in hooks:
            h.remove()
    layers = []
    for i, layer in enumerate(backbone.layers):
        orders = list(backbone.layer_orders[i] or [0])
        layers.append(dict(layer=i, orders=orders, alpha=seen.get(i, [1.0])))
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


def draw_trar_routing(path, rgb, grid, layers, query, title):
    """Save a PNG: stacked routing weights per routed layer, then the
    effective span of each routed layer over the image (query in red)."""
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
        ax.bar([str(lay['layer']) for lay in routed],
               share,
               bottom=bottom,
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
        ax.imshow(
            span,
            cmap='viridis',
            alpha=0.55,
            vmin=0,
            vmax=1,
            extent=(0, w, h, 0),
            interpolation='nearest')
        ph, pw = h / grid[0], w / grid[1]
        ax.add_patch(
            plt.Rectangle((query[1] * pw, query[0] * ph),
                          pw,
                          ph,
                          fill=False,
                          edgecolor='red',
                          lw=1.5))
        ax.set_title(
            f'layer {lay["layer"]}: α=' + ','.join(f'{a:.2f}'
                                                   for a in lay['alpha']),
            fontsize=7)
        ax.axis('off')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_trar_routing(inferencer,
                      image,
                      out_dir,
                      query=None,
                      config=None,
                      checkpoint=None):
    """Write ``<stem>_routing.json`` and ``<stem>_spans.png`` for ``image``.

    Args:
        inferencer (ImageClassificationInferencer): See
            :func:`collect_trar_routing`.
        image (str): Image file (its stem names the outputs).
        out_dir (str): Output folder (created).
        query (Sequence[int], optional): ``(row, col)`` of the query patch.
            Defaults to None (the grid's centre).
        config (str, optional): Recorded in the JSON. Defaults to None.
        checkpoint (str, optional): Recorded in the JSON. Defaults to None.

    Returns:
        tuple[str, str]: The JSON and PNG paths.

    Raises:
        TypeError: The backbone is not a ``TRARViT``.
        ValueError: ``query`` is outside the patch grid (nothing written).
    """
    grid, rgb, layers, preds = collect_trar_routing(inferencer, image)
    query = list(query) if query else [grid[0] // 2, grid[1] // 2]
    if not (0 <= query[0] < grid[0] and 0 <= query[1] < grid[1]):
        raise ValueError(f'--query {query[0]} {query[1]} is outside the '
                         f'{grid[0]}x{grid[1]} patch grid')
    for lay in layers:
        lay['effective_span'] = effective_span(grid, lay['orders'],
                                               lay['alpha'],
                                               query).round(4).tolist()
    os.makedirs(out_dir, exist_ok=True)
    stem = osp.splitext(osp.basename(image))[0]
    record = dict(
        image=image,
        config=config,
        checkpoint=checkpoint,
        grid=grid,
        query=query,
        predictions=preds,
        layers=layers)
    json_path = osp.join(out_dir, f'{stem}_routing.json')
    with open(json_path, 'w') as f:
        json.dump(record, f, indent=1)
    top = preds[0]
    png_path = osp.join(out_dir, f'{stem}_spans.png')
    draw_trar_routing(
        png_path, rgb, grid, layers, query,
        f'{stem}: top-1 {top["name"] or top["index"]} ({top["score"]:.2f}),'
        f' query patch {tuple(query)}')
    return json_path, png_path
