# Copyright (c) mmext contributors. All rights reserved.
"""Generated ViLBERT pre-training data: a Conceptual Captions folder, a tiny
Hugging Face BERT folder and BUTD-style region files."""
from pathlib import Path

import numpy as np
import torch

from .bert import make_bert_folder

__all__ = [
    'make_vilbert_tiny_data', 'make_region_files', 'TINY_VIT', 'tiny_vilbert',
    'fixed_batch'
]

_CLASS_WORDS = ('red', 'green', 'blue')
_FILLER = ('photo', 'picture', 'image', 'small', 'large', 'bright', 'dark',
           'square', 'circle')


def make_region_files(image_dir,
                      out_dir,
                      num_regions=6,
                      feature_dims=2048,
                      num_classes=1601,
                      image_size=32,
                      seed=0):
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
        np.savez(
            out / f'{img.stem}.npz',
            features=rng.gamma(1.0, 1.0,
                               (num_regions, feature_dims)).astype(np.float32),
            boxes=np.concatenate([x1y1, x1y1 + wh], 1).astype(np.float32),
            image_h=np.float32(image_size),
            image_w=np.float32(image_size),
            cls_prob=(prob / prob.sum(1, keepdims=True)).astype(np.float32))
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
    # image i shows class i % 3 (a hue); name it in the caption, so image-
    # text matching is learnable
    rng = np.random.default_rng(seed)
    tsv = root / 'captions.tsv'
    lines = []
    for i, line in enumerate(tsv.read_text(encoding='utf-8').splitlines()):
        words = list(rng.choice(_FILLER, 2))
        caption = ' '.join([_CLASS_WORDS[i % 3]] + words)
        lines.append(caption + '\t' + line.split('\t')[1] + '\n')
    tsv.write_text(''.join(lines), encoding='utf-8')
    make_bert_folder(root / 'bert', seed=seed)
    if regions:
        make_region_files(
            root / 'images', root / 'regions', image_size=size, seed=seed)
    return root


#: a 2-layer 32-d ViT on 32 px images (16 patches of 8 px)
TINY_VIT = dict(
    type='VisionTransformer',
    img_size=32,
    patch_size=8,
    final_norm=False,
    arch=dict(
        embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64))


def tiny_vilbert(bert_dir, **kwargs):
    """A ViLBERT with the BERT folder ``bert_dir``, :data:`TINY_VIT` and one
    co-attention block after layer 1 of each stream; ``kwargs`` override."""
    from mmext.registry import MODELS
    cfg = dict(
        type='ViLBERT',
        text=dict(folder=str(bert_dir)),
        visual=dict(
            type='PatchVisualStream', backbone=TINY_VIT, embed_dims=32),
        coattention=dict(
            text_ids=[1], vision_ids=[1], bi_dims=16, num_heads=2),
        pooled_dims=16)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def fixed_batch(vocab=90, b=4, t=7, img=32, patches=16, seed=0):
    """Already-normalised inputs for a tiny patches model."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(11, vocab, (b, t), generator=g)
    ids[:, 0], ids[:, -1] = 7, 8  # [CLS] ... [SEP] of make_bert_folder
    mask = torch.ones(b, t, dtype=torch.long)
    mask[1, -2:] = 0
    ids[1, -2:] = 0
    labels = torch.full((b, t), -100)
    labels[:, 2] = ids[:, 2]
    ids[:, 2] = 9  # [MASK]
    return dict(
        input_ids=ids,
        attention_mask=mask,
        mlm_labels=labels,
        itm_labels=torch.tensor([1, 0] * (b // 2)),
        img=torch.randn(b, 3, img, img, generator=g),
        img_masked=torch.randn(b, 3, img, img, generator=g),
        patch_mask=torch.rand(b, patches, generator=g) < 0.3)
