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
MRM share one forward and MIM adds one. The region transforms
(``LoadRegionFeatures``, ``MaskRegions``) live in :mod:`.vilbert_regions`
and are re-exported here.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform, Compose
from mmpretrain.structures import DataSample

from mmext.registry import FUNCTIONS, TOKENIZER, TRANSFORMS
from .vilbert_regions import LoadRegionFeatures, MaskRegions

__all__ = [
    'WeakStrongViews', 'RandomPatchMask', 'TokenizeCaption',
    'LoadRegionFeatures', 'MaskRegions', 'PackViLBERTInputs',
    'vilbert_collate', 'mask_tokens'
]


@TRANSFORMS.register_module()
class WeakStrongViews(BaseTransform):
    """Two views of ``img``: ``weak`` pipeline -> ``img``, ``strong``
    pipeline -> ``img_masked`` (the view whose patches get masked)."""

    def __init__(self, weak: List[dict], strong: List[dict]) -> None:
        self.weak, self.strong = Compose(weak), Compose(strong)

    def transform(self, results: dict) -> dict:
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

    def __init__(self, patch_size: int = 16, ratio: float = 0.1) -> None:
        self.patch_size, self.ratio = patch_size, ratio

    def transform(self, results: dict) -> dict:
        h, w = results['img_masked'].shape[:2]
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f'RandomPatchMask: image {h}x{w} is not '
                             f'divisible by patch_size={p}; crop to a '
                             'multiple of the patch size')
        n = (h // p) * (w // p)
        results['patch_mask'] = np.random.rand(n) < self.ratio
        return results


def mask_tokens(ids: Sequence[int],
                special: dict,
                vocab_size: int,
                prob: float = 0.15,
                rng: Any = np.random) -> Tuple[np.ndarray, np.ndarray]:
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
    """Caption -> ``input_ids``, ``caption_ids`` and ``mlm_labels``.

    The tokenizer is built through the ``TOKENIZER`` registry (in the
    ``mmext`` scope: mmext types first, then mmpretrain's) when the first
    sample arrives, once per data loader worker. ``bert=<folder>`` is short
    for ``tokenizer=dict(type='BertTokenizerFromFolder', folder=<folder>)``,
    the local Hugging Face folder the text stream reads too. The first
    version imported the model package's tokenizer function here; now the
    data code reaches the tokenizer only through the registry, as the R2Gen
    data sets reach ``R2GenTokenizer``.

    Args:
        bert (str, optional): Hugging Face BERT folder (its ``vocab.txt``),
            searched as ``find_bert_folder`` does (as given, then
            ``pretrain_pth/<folder>``). Set exactly one of ``bert`` and
            ``tokenizer``.
        max_length (int): Truncate to this many tokens incl. [CLS] / [SEP].
            Defaults to 36.
        mlm_prob (float): Share of tokens masked for MLM (0 = off).
            Defaults to 0.15. [CLS], [SEP], [PAD] are never masked.
        key (str): Caption key of the data info. Defaults to 'text'.
        tokenizer (dict | object, optional): A ``TOKENIZER`` config, e.g.
            ``dict(type='BertTokenizerFromFolder', folder=...)``, mmpretrain's
            ``dict(type='AutoTokenizer', name_or_path=...)`` or a type of
            your own, or a built tokenizer. It must work as a Hugging Face
            tokenizer does: ``tok(text, truncation=True,
            max_length=n)['input_ids']`` and the attributes
            ``mask_token_id``, ``cls_token_id``, ``sep_token_id``,
            ``pad_token_id``, ``vocab_size``. Defaults to None.

    Example:
        >>> from mmext.testing.bert import make_bert_folder
        >>> folder = str(make_bert_folder('work_dirs/ex_tok_bert',
        ...                               weights=None))
        >>> by_registry = TokenizeCaption(mlm_prob=0, tokenizer=dict(
        ...     type='BertTokenizerFromFolder', folder=folder))
        >>> by_folder = TokenizeCaption(folder, mlm_prob=0)
        >>> ids = [t(dict(text='a dog'))['input_ids'].tolist()
        ...        for t in (by_registry, by_folder)]
        >>> ids[0] == ids[1], type(by_registry.tokenizer).__name__
        (True, 'BertTokenizerFast')
    """

    def __init__(self,
                 bert: Optional[str] = None,
                 max_length: int = 36,
                 mlm_prob: float = 0.15,
                 key: str = 'text',
                 tokenizer: Union[dict, Any, None] = None) -> None:
        if (bert is None) == (tokenizer is None):
            raise ValueError(
                'TokenizeCaption: set exactly one of bert (a Hugging Face '
                'BERT folder) and tokenizer (a TOKENIZER config such as '
                "dict(type='BertTokenizerFromFolder', folder=...)); got "
                f'bert={bert!r}, tokenizer={tokenizer!r}')
        self.bert, self.max_length = bert, max_length
        self.mlm_prob, self.key = mlm_prob, key
        if tokenizer is None:
            tokenizer = dict(type='BertTokenizerFromFolder', folder=bert)
        self.tokenizer_cfg = tokenizer if isinstance(tokenizer, dict) \
            else None
        self._tok = None if isinstance(tokenizer, dict) else tokenizer

    @property
    def tokenizer(self) -> Any:
        """The tokenizer, built from ``tokenizer_cfg`` on first use."""
        if self._tok is None:  # built lazily, once per worker
            cfg = dict(self.tokenizer_cfg)
            # the data loader may run in another default scope (mmpretrain's
            # tools set 'mmpretrain'), where mmext's types are not looked up
            cfg.setdefault('_scope_', 'mmext')
            self._tok = TOKENIZER.build(cfg)
        return self._tok

    def transform(self, results: dict) -> dict:
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


_PACK_KEYS = ('input_ids', 'caption_ids', 'mlm_labels', 'patch_mask',
              'region_feats', 'region_locs', 'region_targets', 'mrm_mask')


@TRANSFORMS.register_module()
class PackViLBERTInputs(BaseTransform):
    """Pack the inputs into ``dict(inputs=dict(...), data_samples=...)``;
    images become (3, H, W) uint8 tensors. The data sample keeps the
    caption, the image path, the record ``id`` and ``gt_label`` (class
    index, or a list of indices for multi-label) when present."""

    def transform(self, results: dict) -> dict:
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
def vilbert_collate(data_batch: List[dict],
                    itm_prob: float = 0.5,
                    pad_id: int = 0) -> Dict[str, Any]:
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
