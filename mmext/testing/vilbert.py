# Copyright (c) mmext contributors. All rights reserved.
"""Generated ViLBERT pre-training data: a Conceptual Captions folder, a tiny
Hugging Face BERT folder and BUTD-style region files."""
from pathlib import Path

import numpy as np

from .bert import make_bert_folder

__all__ = ['make_vilbert_tiny_data', 'make_region_files']


def make_region_files(image_dir, out_dir, num_regions=6, feature_dims=2048,
                      num_classes=1601, image_size=32, seed=0):
    """One ``<image stem>.npz`` per image in ``image_dir`` as
    :class:`~mmext.datasets.transforms.LoadRegionFeatures` reads it:
    ``features`` (N, F) non-negative (post-ReLU pooled), ``boxes`` (N, 4)
    pixels, ``image_h``, ``image_w``, ``cls_prob`` (N, C) rows summing
    to 1."""
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for img in sorted(Path(image_dir).glob('*.jpg')):
        x1y1 = rng.uniform(0, image_size / 2, (num_regions, 2))
        wh = rng.uniform(4, image_size / 2, (num_regions, 2))
        logits = rng.normal(size=(num_regions, num_classes)) * 3
        prob = np.exp(logits - logits.max(1, keepdims=True))
        np.savez(out / f'{img.stem}.npz',
                 features=rng.gamma(1.0, 1.0, (num_regions, feature_dims)
                                    ).astype(np.float32),
                 boxes=np.concatenate([x1y1, x1y1 + wh], 1).astype(
                     np.float32),
                 image_h=np.float32(image_size),
                 image_w=np.float32(image_size),
                 cls_prob=(prob / prob.sum(1, keepdims=True)).astype(
                     np.float32))
    return out


def make_vilbert_tiny_data(root, num=16, size=32, regions=False, seed=0):
    """``root/captions.tsv`` + ``images/`` (Conceptual Captions layout, no
    missing image), ``root/bert`` (a 2-layer 32-d BERT whose vocabulary
    covers the captions) and, with ``regions``, ``root/regions/*.npz``.

    Returns:
        Path: ``root``.
    """
    from .multimodal import make_conceptual_captions
    root = Path(root)
    make_conceptual_captions(root, num=num, missing=0, size=size, seed=seed)
    make_bert_folder(root / 'bert', seed=seed)
    if regions:
        make_region_files(root / 'images', root / 'regions',
                          image_size=size, seed=seed)
    return root
