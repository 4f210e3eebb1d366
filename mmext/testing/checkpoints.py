# Copyright (c) mmext contributors. All rights reserved.
"""Small checkpoints in other code bases' on-disk layouts, for converter
tests (the real files cannot be downloaded here)."""
import numpy as np
import torch

__all__ = ['make_google_vit_npz']


def make_google_vit_npz(path,
                        dims=32,
                        heads=4,
                        mlp=48,
                        layers=2,
                        patch=8,
                        grid=4,
                        classes=5,
                        pre_logits=False,
                        drop=()):
    """Write a tiny ViT ``.npz`` with the key names and layouts of
    google-research/vision_transformer's ``ViT-B_16.npz``.

    Args:
        path (str | Path): Output ``.npz``.
        dims, heads, mlp, layers, patch, grid, classes (int): Width, heads,
            MLP width, depth, patch size, patch-grid side and classes.
            Default to 32, 4, 48, 2, 8, 4 and 5.
        pre_logits (bool): Add the ``pre_logits`` layer of the ImageNet-21k
            checkpoints. Defaults to False.
        drop (Sequence[str]): Keys to leave out. Defaults to ().

    Returns:
        dict[str, torch.Tensor]: The written arrays (seed 0).
    """
    rng = np.random.default_rng(0)

    def r(*shape, s=0.2):
        return (rng.standard_normal(shape) * s).astype(np.float32)

    w = {
        'embedding/kernel': r(patch, patch, 3, dims),  # HWIO
        'embedding/bias': r(dims),
        'cls': r(1, 1, dims),
        'Transformer/posembed_input/pos_embedding': r(1, grid * grid + 1,
                                                      dims),
        'Transformer/encoder_norm/scale': 1 + r(dims),
        'Transformer/encoder_norm/bias': r(dims),
        'head/kernel': r(dims, classes),
        'head/bias': r(classes),
    }
    if pre_logits:
        w['pre_logits/kernel'] = r(dims, dims)
        w['pre_logits/bias'] = r(dims)
    for i in range(layers):
        b = f'Transformer/encoderblock_{i}/'
        for ln in ('LayerNorm_0', 'LayerNorm_2'):
            w[b + ln + '/scale'] = 1 + r(dims)
            w[b + ln + '/bias'] = r(dims)
        a = b + 'MultiHeadDotProductAttention_1/'
        for n in ('query', 'key', 'value'):
            w[a + n + '/kernel'] = r(dims, heads, dims // heads)
            w[a + n + '/bias'] = r(heads, dims // heads)
        w[a + 'out/kernel'] = r(heads, dims // heads, dims)
        w[a + 'out/bias'] = r(dims)
        w[b + 'MlpBlock_3/Dense_0/kernel'] = r(dims, mlp)
        w[b + 'MlpBlock_3/Dense_0/bias'] = r(mlp)
        w[b + 'MlpBlock_3/Dense_1/kernel'] = r(mlp, dims)
        w[b + 'MlpBlock_3/Dense_1/bias'] = r(dims)
    for k in drop:
        del w[k]
    np.savez(path, **w)
    return {k: torch.from_numpy(v) for k, v in w.items()}
