# Copyright (c) mmext contributors. All rights reserved.
"""One pipeline that turns an image-text sample into every ViLBERT
pre-training input, and the collate that batches them.

The thesis code (cesipy/bsc-code) feeds its three tasks from three loaders
over the same list (three forwards, plus one for the second MIM view);
vilbert-multi-task has one loader but regions only, and labels a random
caption ITM 1. Here one sample yields the weak view ``img``, the strong
view ``img_masked`` with its ``patch_mask``, the tokenised caption with MLM
labels, and (regions mode) region features with MRM targets; the collate
pads, stacks and swaps captions for ITM (label 1 = matched), so MLM, ITM and
MRM share one forward and MIM adds one.
"""
import os.path as osp

import numpy as np
import torch
from mmcv.transforms import BaseTransform, Compose
from mmpretrain.structures import DataSample

from mmext.registry import FUNCTIONS, TRANSFORMS

__all__ = [
    'WeakStrongViews', 'RandomPatchMask', 'TokenizeCaption',
    'LoadRegionFeatures', 'MaskRegions', 'PackViLBERTInputs',
    'vilbert_collate', 'mask_tokens'
]


@TRANSFORMS.register_module()
class WeakStrongViews(BaseTransform):
    """Two views of ``img``: ``weak`` pipeline -> ``img``, ``strong``
    pipeline -> ``img_masked`` (the view whose patches get masked)."""

    def __init__(self, weak, strong):
        self.weak, self.strong = Compose(weak), Compose(strong)

    def transform(self, results):
        strong = self.strong(dict(results))
        results = self.weak(results)
        results['img_masked'] = strong['img']
        if results['img'].shape != strong['img'].shape:
            raise ValueError(
                f'WeakStrongViews: the weak view is {results["img"].shape} '
                f'but the strong one {strong["img"].shape}; end both '
                'pipelines with the same crop / resize')
        return results


@TRANSFORMS.register_module()
class RandomPatchMask(BaseTransform):
    """``patch_mask`` (N,) bool over the ``patch_size`` grid of
    ``img_masked``: each patch masked with probability ``ratio`` (the thesis
    code: 0.1). The data preprocessor zeroes those patches after
    normalisation, so any backbone sees them as mean colour."""

    def __init__(self, patch_size=16, ratio=0.1):
        self.patch_size, self.ratio = patch_size, ratio

    def transform(self, results):
        h, w = results['img_masked'].shape[:2]
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f'RandomPatchMask: image {h}x{w} is not '
                             f'divisible by patch_size={p}; crop to a '
                             'multiple of the patch size')
        n = (h // p) * (w // p)
        results['patch_mask'] = np.random.rand(n) < self.ratio
        return results


def mask_tokens(ids, special, vocab_size, prob=0.15, rng=np.random):
    """BERT masking of one sequence: each non-special token chosen with
    ``prob``; of those 80% -> [MASK], 10% -> a random non-special token,
    10% kept. Returns ``(masked_ids, labels)`` with label -100 elsewhere.
    ``special`` = dict(mask=id, ids=set of never-masked ids)."""
    ids = np.asarray(ids)
    labels = np.full_like(ids, -100)
    candidate = ~np.isin(ids, list(special['ids']))
    chosen = candidate & (rng.rand(len(ids)) < prob)
    labels[chosen] = ids[chosen]
    out = ids.copy()
    r = rng.rand(len(ids))
    out[chosen & (r < 0.8)] = special['mask']
    rand = chosen & (r >= 0.8) & (r < 0.9)
    out[rand] = _random_tokens(
        int(rand.sum()), vocab_size, special['ids'], rng)
    return out, labels


def _random_tokens(n, vocab_size, special_ids, rng):
    """n uniform ids of the vocabulary that are not special (redrawn)."""
    ids = rng.randint(0, vocab_size, n)
    bad = np.isin(ids, list(special_ids))
    while bad.any():
        ids[bad] = rng.randint(0, vocab_size, int(bad.sum()))
        bad = np.isin(ids, list(special_ids))
    return ids


@TRANSFORMS.register_module()
class TokenizeCaption(BaseTransform):
    """Caption -> ``input_ids``, ``attention_mask``, ``mlm_labels``.

    Args:
        bert (str): Hugging Face BERT folder (its ``vocab.txt``).
        max_length (int): Truncate to this many tokens incl. [CLS] / [SEP].
            Defaults to 36.
        mlm_prob (float): Share of tokens masked for MLM (0 = off).
            Defaults to 0.15. [CLS], [SEP], [PAD] are never masked.
        key (str): Caption key of the data info. Defaults to 'text'.
    """

    def __init__(self, bert, max_length=36, mlm_prob=0.15, key='text'):
        self.bert, self.max_length = bert, max_length
        self.mlm_prob, self.key = mlm_prob, key
        self._tok = None

    @property
    def tokenizer(self):
        if self._tok is None:  # built lazily, once per worker
            from mmext.models.multimodal.vilbert.text_stream import \
                build_bert_tokenizer
            self._tok = build_bert_tokenizer(self.bert)
        return self._tok

    def transform(self, results):
        tok = self.tokenizer
        text = results.get(self.key)
        if not isinstance(text, str):
            raise KeyError(f'TokenizeCaption: the sample has no caption '
                           f'string under {self.key!r} (keys '
                           f'{sorted(results)}); set key=')
        ids = tok(
            text, truncation=True, max_length=self.max_length)['input_ids']
        results['caption_ids'] = np.asarray(ids)  # unmasked, for ITM swaps
        special = dict(
            mask=tok.mask_token_id,
            ids={tok.cls_token_id, tok.sep_token_id, tok.pad_token_id})
        if self.mlm_prob:
            ids, labels = mask_tokens(ids, special, tok.vocab_size,
                                      self.mlm_prob)
            results['mlm_labels'] = labels
        results['input_ids'] = np.asarray(ids)
        return results


@TRANSFORMS.register_module()
class LoadRegionFeatures(BaseTransform):
    """Detector regions of a sample from per-image ``.npz`` files or the
    released BUTD TSVs.

    Gives ``region_feats`` (N, F), ``region_locs`` (N, 5): x1/w, y1/h,
    x2/w, y2/h, area fraction, and ``region_targets`` (N, C) when the file
    holds ``cls_prob`` (the detector's class distribution, the
    masked-region target). At most ``max_regions`` (ViLBERT: 36) are kept.

    Sources (exactly one):

    - ``feature_dir``: ``<feature_dir>/<image id>.npz`` as written by
      ``tools/feature_extraction/extract_regions.py`` or
      ``regions_tsv_to_npz.py`` (read with ``allow_pickle=False``).
    - ``feature_file``: BUTD TSV(s) as ``tools/generate_tsv.py`` writes
      them (``image_id, image_w, image_h, num_boxes, boxes, features``;
      no ``cls_prob``), a path, glob or list. Rows are found through a
      sidecar index (:class:`~mmext.datasets.region_tsv.RegionTSV`); every
      process opens its own file handles.

    The image id of a sample: ``results[id_key]`` when ``id_key`` is set
    and the sample has it (COCO's int ``image_id``); else, when an
    ``image_ids.csv`` from ``extract_regions.py`` lies in ``feature_dir``
    (or beside the first TSV), the id it lists for ``img_path`` (same
    absolute path, else same file name if only one image has it), so two
    images with one stem find their own regions; else the file stem of
    ``img_path``. mmpretrain / the first version here had only the stem
    of ``feature_dir/<stem>.npz``.

    Args:
        feature_dir (str, optional): Folder of ``.npz`` files.
        max_regions (int): Defaults to 36.
        feature_file (str | list[str], optional): TSV path(s) or glob(s).
        id_key (str, optional): Sample key holding the image id.
        require_cls_prob (bool): Refuse features without ``cls_prob``
            (set by configs whose masked-region loss needs it): a TSV at
            build time, an ``.npz`` at the first sample. Defaults to False.
        max_line_bytes (int, optional): Longest TSV row read (8 MiB).
    """

    def __init__(self,
                 feature_dir=None,
                 max_regions=36,
                 feature_file=None,
                 id_key=None,
                 require_cls_prob=False,
                 max_line_bytes=None):
        if (feature_dir is None) == (feature_file is None):
            raise ValueError(
                'LoadRegionFeatures: set exactly one of feature_dir (a '
                'folder of <image id>.npz) and feature_file (BUTD TSV path, '
                f'glob or list); got feature_dir={feature_dir!r}, '
                f'feature_file={feature_file!r}')
        self.feature_dir, self.max_regions = feature_dir, max_regions
        self.feature_file, self.id_key = feature_file, id_key
        self.require_cls_prob = require_cls_prob
        self._tsv, self._ids = None, False
        if feature_file is not None:
            from mmext.datasets.region_tsv import MAX_LINE_BYTES, RegionTSV
            self._tsv = RegionTSV(feature_file, max_line_bytes
                                  or MAX_LINE_BYTES)
            if require_cls_prob:
                raise ValueError(_no_cls_prob(feature_file, 'BUTD TSVs'))

    def _id_map(self):
        if self._ids is False:
            from mmext.datasets.region_features import read_image_ids
            folder = self.feature_dir or osp.dirname(self._tsv.files[0])
            path = osp.join(folder, 'image_ids.csv')
            self._ids = read_image_ids(path) if osp.isfile(path) else None
        return self._ids

    def image_id(self, results):
        """The sample's region id and the rule that gave it."""
        if self.id_key and results.get(self.id_key) is not None:
            return str(results[self.id_key]), f'results[{self.id_key!r}]'
        img_path = results['img_path']
        ids = self._id_map()
        if ids is not None:
            by_path, by_name = ids
            found = by_path.get(osp.abspath(img_path))
            if found is None:
                found = by_name.get(osp.basename(img_path))
            if found is not None:
                return found, 'image_ids.csv'
        return osp.splitext(osp.basename(img_path))[0], 'file stem'

    def _regions(self, results):
        from mmext.datasets.region_features import (load_region_features,
                                                    npz_id_problem)
        image_id, rule = self.image_id(results)
        source = self.feature_dir or self._tsv
        if self._tsv is not None:
            regions = self._tsv.get(image_id)
        else:
            path = osp.join(self.feature_dir, image_id + '.npz')
            problem = npz_id_problem(image_id)
            if problem:
                raise ValueError(
                    f'LoadRegionFeatures: image id {image_id!r} (from '
                    f'{rule}) {problem}; set id_key to a plain id')
            regions = load_region_features(path) if osp.isfile(path) else None
            source = path
        if regions is None:
            raise FileNotFoundError(
                f'LoadRegionFeatures: no regions for image id {image_id!r} '
                f'(from {rule}, img_path {results.get("img_path")}) in '
                f'{source}; extract features first (tools/'
                'feature_extraction/extract_regions.py) or set id_key')
        if self.require_cls_prob and 'cls_prob' not in regions:
            raise ValueError(_no_cls_prob(source, 'these features'))
        return regions

    def transform(self, results):
        regions = self._regions(results)
        n = self.max_regions
        results.update(
            region_feats=regions['features'][:n].astype(np.float32),
            region_locs=regions['locations'][:n])
        if 'cls_prob' in regions:
            results['region_targets'] = regions['cls_prob'][:n].astype(
                np.float32)
        return results


def _no_cls_prob(source, what):
    return (f'LoadRegionFeatures: {source} has no cls_prob ({what} carry '
            'only boxes and features) but require_cls_prob=True (the '
            'masked-region KL loss): set model.losses.mrm=0 and '
            'require_cls_prob=False to train MLM + ITM only, or extract '
            '.npz with cls_prob (tools/feature_extraction/'
            'extract_regions.py --format npz) and set feature_dir')


@TRANSFORMS.register_module()
class MaskRegions(BaseTransform):
    """Masked-region modelling: each region chosen with ``prob`` (0.15);
    ``zero_prob`` (0.9) of the chosen get a zero feature, the rest stay.
    Gives ``mrm_mask`` (N,) bool (ViLBERT's ``image_label == 1``)."""

    def __init__(self, prob=0.15, zero_prob=0.9):
        self.prob, self.zero_prob = prob, zero_prob

    def transform(self, results):
        n = len(results['region_feats'])
        chosen = np.random.rand(n) < self.prob
        zero = chosen & (np.random.rand(n) < self.zero_prob)
        results['region_feats'] = results['region_feats'].copy()
        results['region_feats'][zero] = 0
        results['mrm_mask'] = chosen
        return results


_PACK_KEYS = ('input_ids', 'caption_ids', 'mlm_labels', 'patch_mask',
              'region_feats', 'region_locs', 'region_targets', 'mrm_mask')


@TRANSFORMS.register_module()
class PackViLBERTInputs(BaseTransform):
    """Pack the inputs into ``dict(inputs=dict(...), data_samples=...)``;
    images become (3, H, W) uint8 tensors. The data sample keeps the
    caption, the image path, the record ``id`` and ``gt_label`` (class
    index, or a list of indices for multi-label) when present."""

    def transform(self, results):
        inputs = {}
        for key in ('img', 'img_masked'):
            if key in results:
                img = np.ascontiguousarray(results[key])
                if img.ndim == 2:
                    img = img[..., None]
                inputs[key] = torch.from_numpy(img).permute(2, 0, 1)
        for key in _PACK_KEYS:
            if key in results:
                inputs[key] = torch.as_tensor(results[key])
        sample = DataSample(
            metainfo=dict(
                img_path=results.get('img_path'), text=results.get('text')))
        if results.get('id') is not None:
            sample.set_metainfo(dict(id=results['id']))
        if 'gt_label' in results:  # fine-tuning (ViLBERTClassifier)
            sample.set_gt_label(results['gt_label'])
        return dict(inputs=inputs, data_samples=sample)


def _pad(seqs, value):
    out = torch.full(
        (len(seqs), max(len(s) for s in seqs)) + tuple(seqs[0].shape[1:]),
        value,
        dtype=seqs[0].dtype)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


def _swap_captions(batch, prob, pad_id):
    """Give each sample another sample's caption with ``prob`` -> labels
    (1 = matched). MLM labels of swapped captions are dropped (the text no
    longer describes the image)."""
    n = len(batch['input_ids'])
    labels = torch.ones(n, dtype=torch.long)
    if n < 2:
        return labels
    swap = torch.rand(n) < prob
    for i in torch.nonzero(swap).flatten().tolist():
        j = (i + torch.randint(1, n, ()).item()) % n  # any other sample
        if torch.equal(batch['caption_ids'][j], batch['caption_ids'][i]):
            continue  # a duplicate caption would be a false negative
        batch['input_ids'][i] = batch['caption_ids'][j]
        if 'mlm_labels' in batch:
            batch['mlm_labels'][i] = torch.full_like(batch['caption_ids'][j],
                                                     -100)
        labels[i] = 0
    return labels


@FUNCTIONS.register_module()
def vilbert_collate(data_batch, itm_prob=0.5, pad_id=0):
    """Batch :class:`PackViLBERTInputs` outputs: stack images, pad tokens
    (``attention_mask``), regions (``region_mask``), swap captions for ITM
    with ``itm_prob`` (0 = no ITM labels).

    Returns:
        dict: ``inputs`` (dict of tensors) and ``data_samples`` (list).
    """
    inputs = [d['inputs'] for d in data_batch]
    keys = inputs[0].keys()
    per_key = {k: [x[k] for x in inputs] for k in keys}
    if itm_prob:
        per_key['itm_labels'] = _swap_captions(per_key, itm_prob, pad_id)
    batch = {}
    for k, vals in per_key.items():
        if k in ('img', 'img_masked', 'patch_mask'):
            batch[k] = torch.stack(vals)
        elif k == 'itm_labels':
            batch[k] = vals
        elif k in ('input_ids', 'mlm_labels'):
            batch[k] = _pad(vals, pad_id if k == 'input_ids' else -100)
        elif k == 'caption_ids':
            continue
        else:
            batch[k] = _pad(vals, 0)
    ids = per_key['input_ids']
    mask = torch.zeros(batch['input_ids'].shape, dtype=torch.long)
    for i, s in enumerate(ids):
        mask[i, :len(s)] = 1
    batch['attention_mask'] = mask
    if 'region_feats' in per_key:
        r = torch.zeros(batch['region_feats'].shape[:2])
        for i, s in enumerate(per_key['region_feats']):
            r[i, :len(s)] = 1
        batch['region_mask'] = r
        if 'mrm_mask' in batch:  # no MaskRegions at inference
            batch['mrm_mask'] = batch['mrm_mask'].bool() & r.bool()
    return dict(
        inputs=batch, data_samples=[d['data_samples'] for d in data_batch])
