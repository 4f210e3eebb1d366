# Copyright (c) mmext contributors. All rights reserved.
"""The ViLBERT pre-training pipeline: MLM masking statistics, ITM swaps
(balanced, label 1 = matched), patch masks, regions, collate, and the
caption tokenizer built through the ``TOKENIZER`` registry."""
from pathlib import Path

import numpy as np
import pytest
import torch

from mmext.datasets.transforms.vilbert import (LoadRegionFeatures, MaskRegions,
                                               PackViLBERTInputs,
                                               RandomPatchMask,
                                               TokenizeCaption, mask_tokens,
                                               vilbert_collate)
from mmext.models.multimodal.vilbert import ViLBERTDataPreprocessor
from mmext.registry import TOKENIZER
from mmext.testing.vilbert import make_region_files
from tests.conftest import ROOT
from tests.test_layering import _imports

SPECIAL = dict(mask=103, ids={0, 101, 102})  # [PAD] [CLS] [SEP]


def test_mlm_masking_statistics():
    rng = np.random.RandomState(0)
    ids = np.array([101] + list(range(1000, 1038)) + [102, 0, 0])
    chosen = masked = randomised = kept = total = 0
    for _ in range(2000):
        out, labels = mask_tokens(ids, SPECIAL, 30522, 0.15, rng)
        sel = labels != -100
        # never [CLS] / [SEP] / [PAD]; labels are the original ids
        assert not sel[[0, 39, 40, 41]].any()
        assert (labels[sel] == ids[sel]).all()
        assert (out[~sel] == ids[~sel]).all()
        total += 38
        chosen += sel.sum()
        masked += (out[sel] == 103).sum()
        kept += (out[sel] == ids[sel]).sum()
        randomised += ((out[sel] != 103) & (out[sel] != ids[sel])).sum()
        assert not np.isin(out[sel], [0, 101, 102]).any()
    assert abs(chosen / total - 0.15) < 0.005
    assert abs(masked / chosen - 0.8) < 0.015
    assert abs(randomised / chosen - 0.1) < 0.015
    assert abs(kept / chosen - 0.1) < 0.015


def _sample(i, n_tokens, size=16, patches=4):
    ids = torch.tensor([101] + [1000 + i] * (n_tokens - 2) + [102])
    return dict(
        inputs=dict(
            img=torch.full((3, size, size), i, dtype=torch.uint8),
            img_masked=torch.full((3, size, size), i, dtype=torch.uint8),
            patch_mask=torch.zeros(patches, dtype=torch.bool),
            input_ids=ids.clone(),
            caption_ids=ids.clone(),
            mlm_labels=torch.full((n_tokens, ), 5)),
        data_samples=i)


def test_itm_swaps_are_balanced_and_consistent():
    torch.manual_seed(0)
    labels, n = [], 0
    for _ in range(300):
        batch = [_sample(i, 3 + i) for i in range(4)]
        out = vilbert_collate(batch, itm_prob=0.5)['inputs']
        for i in range(4):
            caption_of = out['input_ids'][i, 1].item() - 1000
            matched = out['itm_labels'][i].item()
            labels.append(matched)
            # label 1 = the sample's own caption
            assert (caption_of == i) == bool(matched)
            length = out['attention_mask'][i].sum().item()
            assert length == 3 + caption_of  # the caption's own length
            if not matched:  # MLM labels dropped for a foreign caption
                assert (out['mlm_labels'][i] == -100).all()
            else:
                assert (out['mlm_labels'][i, :length] == 5).all()
        n += 4
    assert abs(np.mean(labels) - 0.5) < 0.04
    assert out['img'].shape == (4, 3, 16, 16)
    assert 'caption_ids' not in out
    # no ITM: labels absent, captions untouched
    out = vilbert_collate([_sample(0, 3), _sample(1, 4)], itm_prob=0)
    assert 'itm_labels' not in out['inputs']
    assert out['inputs']['input_ids'][1, 1] == 1001


def test_tokenize_caption_with_generated_bert(bert_dir):
    t = TokenizeCaption(str(bert_dir), max_length=6, mlm_prob=0.5)
    np.random.seed(0)
    r = t(dict(text='a red dog on the street corner today'))
    tok = t.tokenizer
    assert r['caption_ids'][0] == tok.cls_token_id
    assert r['caption_ids'][-1] == tok.sep_token_id
    assert len(
        r['input_ids']) == 6 and tok.unk_token_id not in r['caption_ids']
    assert (r['mlm_labels'][[0, -1]] == -100).all()
    with pytest.raises(KeyError, match="under 'text'"):
        t(dict(caption='x'))


class _CountingTokenizer:
    """A user's own TOKENIZER type: the folder's BERT vocabulary, counting
    the captions it tokenises."""

    def __init__(self, folder):
        from transformers import BertTokenizerFast
        self.inner = BertTokenizerFast(
            vocab_file=str(Path(folder) / 'vocab.txt'))
        self.calls = 0

    def __call__(self, text, **kwargs):
        self.calls += 1
        return self.inner(text, **kwargs)

    def __getattr__(self, name):  # mask_token_id, vocab_size, ...
        return getattr(self.__dict__['inner'], name)


@pytest.fixture
def counting_tokenizer():
    name = 'CountingTokenizerOfTheTest'
    TOKENIZER.register_module(name=name, module=_CountingTokenizer)
    yield name
    # registered in mmext's registry and mirrored into mmpretrain's
    TOKENIZER._module_dict.pop(name)
    TOKENIZER.parent._module_dict.pop(name, None)
    TOKENIZER.__dict__.get('_mirrored', set()).discard(name)


CAPTIONS = [
    'a red dog on the street corner today', 'The Cat SAT', 'zebra?! 42', ''
]


def test_tokenizer_is_built_through_the_registry(bert_dir, counting_tokenizer):
    from transformers import BertTokenizerFast
    folder = str(bert_dir)
    # the ids of the folder's vocabulary, tokenised without mmext
    direct = BertTokenizerFast(
        vocab_file=str(bert_dir / 'vocab.txt'), do_lower_case=True)
    old = TokenizeCaption(folder, max_length=6, mlm_prob=0)
    own = TokenizeCaption(
        tokenizer=dict(type=counting_tokenizer, folder=folder),
        max_length=6,
        mlm_prob=0)
    for text in CAPTIONS:
        want = direct(text, truncation=True, max_length=6)['input_ids']
        assert old(dict(text=text))['input_ids'].tolist() == want
        assert own(dict(text=text))['input_ids'].tolist() == want
    assert type(old.tokenizer).__name__ == 'BertTokenizerFast'
    assert isinstance(own.tokenizer, _CountingTokenizer)
    assert own.tokenizer.calls == len(CAPTIONS)
    # a built tokenizer is used as given
    given = _CountingTokenizer(folder)
    TokenizeCaption(tokenizer=given, mlm_prob=0)(dict(text='a dog'))
    assert given.calls == 1


def test_bert_folder_is_the_registered_folder_tokenizer(bert_dir):
    """``bert=<folder>`` and ``tokenizer=dict(type='BertTokenizerFromFolder',
    ...)`` give the same ids, caption ids and MLM labels."""
    by_folder = TokenizeCaption(str(bert_dir), max_length=12, mlm_prob=0.5)
    by_cfg = TokenizeCaption(
        tokenizer=dict(type='BertTokenizerFromFolder', folder=str(bert_dir)),
        max_length=12,
        mlm_prob=0.5)
    outs = []
    for t in (by_folder, by_cfg):
        np.random.seed(3)
        outs.append([t(dict(text=text)) for text in CAPTIONS])
    for a, b in zip(*outs):
        assert a.keys() == b.keys()
        for key in ('input_ids', 'caption_ids', 'mlm_labels'):
            assert a[key].tolist() == b[key].tolist()
    assert any((r['mlm_labels'] != -100).any() for r in outs[0])


def test_tokenizer_arguments_refused(tmp_path):
    with pytest.raises(ValueError, match='exactly one of bert'):
        TokenizeCaption()
    with pytest.raises(ValueError, match='exactly one of bert'):
        TokenizeCaption(
            'a', tokenizer=dict(type='BertTokenizerFromFolder', folder='a'))
    # a missing folder still names every place searched, at the first sample
    t = TokenizeCaption(str(tmp_path / 'no_bert'))
    with pytest.raises(FileNotFoundError, match='no_bert.*not found in'):
        t(dict(text='a dog'))


def test_data_code_does_not_import_model_code():
    """mmext.datasets reaches the tokenizer through the registry only (the
    layering test allows datasets -> models; this pair is kept apart)."""
    found = [(path.name, name)
             for path in (ROOT / 'mmext' / 'datasets').rglob('*.py')
             for name in _imports(path) if name.startswith('mmext.models')]
    assert not found


def test_patch_mask_and_preprocessor():
    np.random.seed(0)
    r = RandomPatchMask(
        patch_size=8, ratio=0.3)(
            dict(img_masked=np.zeros((32, 16, 3), np.uint8)))
    assert r['patch_mask'].shape == (8, )
    ratios = [
        RandomPatchMask(8, 0.3)(
            dict(img_masked=np.zeros((64, 64, 3))))['patch_mask'].mean()
        for _ in range(200)
    ]
    assert abs(np.mean(ratios) - 0.3) < 0.02
    with pytest.raises(ValueError, match='divisible'):
        RandomPatchMask(8)(dict(img_masked=np.zeros((30, 32, 3))))
    img = torch.ones(1, 3, 16, 8)
    mask = torch.tensor([[False, True]])  # a 2 x 1 grid of 8-px patches
    out = ViLBERTDataPreprocessor.mask_patches(img, mask)
    assert out[0, :, :8].eq(1).all() and out[0, :, 8:].eq(0).all()
    with pytest.raises(ValueError, match='does not tile'):
        ViLBERTDataPreprocessor.mask_patches(img, torch.zeros(1, 3))


def test_regions_from_files(tmp_path):
    from PIL import Image
    (tmp_path / 'images').mkdir()
    Image.new('RGB', (32, 32)).save(tmp_path / 'images/abc.jpg')
    make_region_files(
        tmp_path / 'images',
        tmp_path / 'regions',
        num_regions=5,
        feature_dims=8,
        num_classes=4)
    load = LoadRegionFeatures(str(tmp_path / 'regions'), max_regions=4)
    r = load(dict(img_path=str(tmp_path / 'images/abc.jpg')))
    with np.load(tmp_path / 'regions/abc.npz') as z:
        box = z['boxes'][0]
    x1, y1, x2, y2 = box / 32
    assert np.allclose(r['region_locs'][0],
                       [x1, y1, x2, y2, (x2 - x1) * (y2 - y1)])
    assert r['region_feats'].shape == (4, 8)
    assert np.allclose(r['region_targets'].sum(1), 1, atol=1e-5)
    np.random.seed(0)
    chosen = zeroed = 0
    for _ in range(400):
        m = MaskRegions(0.15, 0.9)(dict(r))
        chosen += m['mrm_mask'].sum()
        zeroed += (m['region_feats'][m['mrm_mask']] == 0).all(1).sum()
        assert (m['region_feats'][~m['mrm_mask']] == r['region_feats']
                [~m['mrm_mask']]).all()
    assert abs(chosen / 1600 - 0.15) < 0.03
    assert abs(zeroed / chosen - 0.9) < 0.05
    # two samples with 4 and 2 regions: padded, region_mask marks them
    a = PackViLBERTInputs()(
        dict(MaskRegions()(dict(r)), input_ids=[1, 2], caption_ids=[1, 2]))
    b2 = {k: v[:2] for k, v in r.items() if k.startswith('region')}
    b = PackViLBERTInputs()(
        dict(MaskRegions()(b2), input_ids=[1, 2], caption_ids=[1, 2]))
    out = vilbert_collate([a, b], itm_prob=0)['inputs']
    assert out['region_mask'].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert not out['mrm_mask'][1, 2:].any()
    with pytest.raises(FileNotFoundError, match='no regions for image id'):
        load(dict(img_path='images/missing.jpg'))
