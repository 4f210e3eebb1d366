# Copyright (c) mmext contributors. All rights reserved.
"""Figures of an alignment record: layer x layer heat maps, per-layer curves.

Both sides are always named (:func:`side_labels`): by config, by checkpoint
(parent folder + file) when both sides share a config, and by stream when
one model is compared with itself. Figures are at least 800 px wide, long
names are wrapped, and every text is checked to lie inside the figure
(:func:`texts_outside`) before the file is written; a figure that still
cuts a label is enlarged until it does not.
"""
import os.path as osp
import textwrap

from mmext.evaluation.metrics.alignment import ALIGNMENT_METRICS

__all__ = [
    'side_labels', 'heatmap_figure', 'per_layer_figure', 'texts_outside',
    'plot_alignment', 'MIN_WIDTH_PX', 'DPI'
]

DPI = 100
MIN_WIDTH_PX = 800


def _stem(path):
    return osp.splitext(osp.basename(str(path)))[0]


def _checkpoint_name(path):
    if path is None:
        return 'initial weights'
    parent = osp.basename(osp.dirname(osp.abspath(str(path))))
    return f'{parent}/{osp.basename(str(path))}'


def _stream(names):
    """A dotted part every layer name shares (``text``, ``vision``)."""
    parts = [set(n.split('.')) for n in names]
    common = set.intersection(*parts) if parts else set()
    words = [
        p for p in names[0].split('.') if p in common and not p.isdigit()
    ] if names else []
    return words[-1] if words else None


def side_labels(result):
    """``(label a, label b)``: always ``'a: ...'`` / ``'b: ...'`` and never
    the same text for two different sides."""
    cfg_a, cfg_b = result['config'], result.get('config2')
    ck_a, ck_b = result.get('checkpoint'), result.get('checkpoint2')
    if cfg_b is None:  # one model: its two sides (streams or layer sets)
        name = _checkpoint_name(ck_a) if ck_a else _stem(cfg_a)
        la, lb = result['layers_a'], result['layers_b']
        if la == lb:
            return f'a: {name}', f'b: {name} (same layers)'
        sa, sb = _stream(la), _stream(lb)
        sa, sb = (sa, sb) if sa and sb and sa != sb else ('side a', 'side b')
        return f'a: {name}, {sa}', f'b: {name}, {sb}'
    same_cfg = osp.abspath(str(cfg_a)) == osp.abspath(str(cfg_b))
    if same_cfg or _stem(cfg_a) == _stem(cfg_b):
        na, nb = _checkpoint_name(ck_a), _checkpoint_name(ck_b)
        if na == nb:
            na, nb = f'{na} (model 1)', f'{nb} (model 2)'
        return f'a: {na}', f'b: {nb}'
    return f'a: {_stem(cfg_a)}', f'b: {_stem(cfg_b)}'


def _wrap(text, inches, fontsize):
    chars = max(20, int(inches * 72 / (0.6 * fontsize)))
    return '\n'.join(textwrap.wrap(text, chars, break_on_hyphens=False)) \
        or text


def texts_outside(fig):
    """The visible texts of ``fig`` whose box leaves the figure (1 px
    slack), drawn with the Agg renderer."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    bad = []
    for text in fig.findobj(lambda a: hasattr(a, 'get_text')):
        if not text.get_visible() or not text.get_text().strip():
            continue
        ext = text.get_window_extent(renderer)
        if (ext.x0 < box.x0 - 1 or ext.y0 < box.y0 - 1 or ext.x1 > box.x1 + 1
                or ext.y1 > box.y1 + 1):
            bad.append(text.get_text())
    return bad


def _fit(fig):
    """tight_layout, then enlarge the figure until no text is cut."""
    for _ in range(4):
        fig.tight_layout()
        if not texts_outside(fig):
            return fig
        w, h = fig.get_size_inches()
        fig.set_size_inches(w * 1.25, h * 1.25)
    return fig


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _matrix(result, metric):
    import numpy as np
    la, lb = result['layers_a'], result['layers_b']
    mat = np.full((len(la), len(lb)), np.nan)
    for r in result['records']:
        mat[la.index(r['layer_a']), lb.index(r['layer_b'])] = r[metric]
    return mat


def heatmap_figure(result, metric):
    """Layer x layer heat map of one metric: rows side a, columns side b."""
    plt = _pyplot()
    la, lb = result['layers_a'], result['layers_b']
    name_a, name_b = side_labels(result)
    longest = max(len(n) for n in la + lb)
    w = max(MIN_WIDTH_PX / DPI, 2.5 + 0.3 * len(lb) + 0.07 * longest)
    h = max(6, 2.5 + 0.3 * len(la) + 0.07 * longest)
    fig, ax = plt.subplots(figsize=(w, h))
    im = ax.imshow(_matrix(result, metric), cmap='viridis', aspect='auto')
    ax.set_xticks(range(len(lb)), lb, rotation=90, fontsize=8)
    ax.set_yticks(range(len(la)), la, fontsize=8)
    ax.set_xlabel(_wrap(name_b, w - 2, 10), fontsize=10)
    ax.set_ylabel(_wrap(name_a, h - 2, 10), fontsize=10)
    title = (f'{metric} (N={result["num_samples"]}, '
             f'pooling {result.get("pooling", "auto")}): rows {name_a}; '
             f'columns {name_b}')
    ax.set_title(_wrap(title, w - 1, 11), fontsize=11)
    fig.colorbar(im, ax=ax)
    return _fit(fig)


def per_layer_figure(result):
    """Per-layer curves: layer i of a vs layer i of b (equal counts) or vs
    its best layer of b (by the first metric; named on the top axis)."""
    plt = _pyplot()
    import numpy as np
    la, lb = result['layers_a'], result['layers_b']
    name_a, name_b = side_labels(result)
    matched = len(la) == len(lb)
    longest = max(len(n) for n in la + lb)
    w = max(MIN_WIDTH_PX / DPI, 2 + 0.45 * len(la))
    fig, ax = plt.subplots(figsize=(w, 4.5 + 0.1 * longest))
    best_idx = None
    for metric in result['metrics']:
        mat = _matrix(result, metric)
        if matched:
            y = np.diag(mat)
        else:
            arg = np.nanargmax if ALIGNMENT_METRICS[metric] else np.nanargmin
            idx = arg(mat, axis=1)
            y = mat[np.arange(len(la)), idx]
            best_idx = idx if best_idx is None else best_idx
        ax.plot(range(len(la)), y, marker='o', label=metric)
    ax.set_xticks(range(len(la)), la, rotation=90, fontsize=8)
    ax.set_xlabel(_wrap(f'layer of {name_a}', w - 1, 10), fontsize=10)
    top = ax.secondary_xaxis('top')
    top_names = lb if matched else [lb[i] for i in best_idx]
    top.set_xticks(range(len(la)), top_names, rotation=90, fontsize=8)
    first = result['metrics'][0]
    top.set_xlabel(
        _wrap(
            f'layer of {name_b}'
            if matched else f'best layer of {name_b} (by {first})', w - 1, 10),
        fontsize=10)
    ax.set_ylabel('score')
    ax.legend(fontsize=8)
    return _fit(fig)


def plot_alignment(result, out_dir):
    """``heatmap_{metric}.png`` per metric and ``per_layer.png``.

    Returns:
        list[str]: Written files.
    """
    plt = _pyplot()
    files = []
    figs = [(f'heatmap_{m}.png', lambda m=m: heatmap_figure(result, m))
            for m in result['metrics']]
    figs.append(('per_layer.png', lambda: per_layer_figure(result)))
    for name, make in figs:
        fig = make()
        path = osp.join(out_dir, name)
        fig.savefig(path, dpi=DPI)
        plt.close(fig)
        files.append(path)
    return files
