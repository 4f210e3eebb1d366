# Copyright (c) mmext contributors. All rights reserved.
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from mmext.apis import restore_vocab_from_checkpoint
from mmext.datasets import MIMICCXR, AnnotationError, IUXray
from mmext.datasets.transforms import ApplyToViews
from mmext.models.multimodal.r2gen.tokenizer import R2GenTokenizer
from mmext.testing import make_iu_xray, make_mimic_cxr
from tests.conftest import ROOT

LOAD_PACK = [dict(type='LoadMultiViewImages'), dict(type='PackReportInputs')]


@pytest.fixture(scope='module')
def iu_root(tmp_path_factory):
    return make_iu_xray(
        tmp_path_factory.mktemp('iu'), n_train=20, n_val=4, n_test=4, size=48)


def test_iu_sample_has_both_views_tokens_and_full_report(iu_root):
    ds = IUXray(
        str(iu_root),
        split='val',
        max_seq_length=12,
        tokenizer=dict(type='R2GenTokenizer', threshold=2),
        pipeline=LOAD_PACK)
    ann = json.loads((iu_root / 'annotation.json').read_text())['val']
    assert len(ds) == len(ann) == 4
    out = ds[1]
    entry = ann[1]
    inputs, sample = out['inputs'], out['data_samples']
    assert inputs.dtype == torch.uint8 and inputs.shape == (2, 3, 48, 48)
    for v in range(2):  # view v is image_path[v], gray -> 3 equal channels
        ref = np.array(
            Image.open(iu_root / 'images' /
                       entry['image_path'][v]).convert('RGB'))
        assert torch.equal(inputs[v], torch.from_numpy(ref).permute(2, 0, 1))
    tok = R2GenTokenizer(
        ann_file=str(iu_root / 'annotation.json'), threshold=2)
    # R2Gen: tokenizer(report)[:max_seq_length] (EOS lost when too long)
    assert sample.gt_tokens.tolist() == tok.encode(entry['report'])[:12]
    # metrics see the whole cleaned report, not the truncated ids
    assert sample.gt_report == tok.clean(entry['report'])
    assert len(sample.gt_report.split()) > 12
    assert sample.study_id == entry['id']
    assert ds.metainfo['vocab'] == tok.vocab


def test_mimic_first_view_jpeg(tmp_path):
    root = make_mimic_cxr(tmp_path, n_train=12, n_val=2, n_test=2, size=40)
    ds = MIMICCXR(
        str(root),
        split='test',
        pipeline=LOAD_PACK,
        tokenizer=dict(type='R2GenTokenizer', threshold=2))
    assert ds.max_seq_length == 100
    assert ds.tokenizer.dataset == 'mimic_cxr'
    out = ds[0]
    assert out['inputs'].shape == (1, 3, 40, 40)
    assert '\n' not in out['data_samples'].gt_report


def test_missing_image_skipped_and_reported(tmp_path, monkeypatch):
    from mmext.datasets import report_dataset
    logged = []
    monkeypatch.setattr(report_dataset, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw)))
    root = make_iu_xray(tmp_path, n_train=6, n_val=3, n_test=1, size=32)
    ann = json.loads((root / 'annotation.json').read_text())
    lost = ann['val'][1]
    (root / 'images' / lost['image_path'][1]).unlink()
    ds = IUXray(str(root), split='val', pipeline=LOAD_PACK)
    assert len(ds) == 2 and ds.num_skipped == 1
    assert lost['id'] not in [d['study_id'] for d in ds.data_list]
    (msg, kw), = logged  # one line for all missing studies
    assert 'skipped 1 of 3 val studies' in msg and lost['id'] in msg
    assert kw['level'] == 30  # logging.WARNING


def test_annotation_errors_name_file_split_and_entry(tmp_path):
    root = make_iu_xray(tmp_path, n_train=4, n_val=2, n_test=1, size=32)
    with pytest.raises(AnnotationError, match=r"no split 'valid'.*'train'"):
        IUXray(str(root), split='valid', pipeline=LOAD_PACK)
    ann = json.loads((root / 'annotation.json').read_text())
    ann['test'][0]['report'] = '  '
    (root / 'annotation.json').write_text(json.dumps(ann))
    with pytest.raises(
            AnnotationError,
            match=f"annotation.json split 'test' entry "
            f"'{ann['test'][0]['id']}' has an empty report"):
        IUXray(str(root), split='test', pipeline=LOAD_PACK)


def test_apply_to_views_draws_per_view():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    t = ApplyToViews([dict(type='RandomCrop', crop_size=20)])
    differ = 0
    for _ in range(10):
        out = t(dict(img=[img, img.copy()]))
        differ += not np.array_equal(out['img'][0], out['img'][1])
    assert differ >= 5  # one shared draw would never differ
    with pytest.raises(ValueError, match='different sizes'):
        ApplyToViews([dict(type='ResizeEdge', scale=16)])(
            dict(img=[img, img[:, :20]]))


def test_base_config_pipelines_and_vocab_restore(iu_root, tmp_path):
    cfg = Config.fromfile(osp.join(ROOT, 'configs/_base_/datasets/iu_xray.py'))
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = str(iu_root)
    ds_cfg.tokenizer.ann_file = str(iu_root / 'annotation.json')
    train = IUXray(**{k: v for k, v in ds_cfg.items() if k != 'type'})
    assert train[0]['inputs'].shape == (2, 3, 224, 224)

    # a checkpoint carries the vocabulary; restoring puts it in every
    # tokenizer dict so nothing is rebuilt from (possibly other) data
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save(
        dict(meta=dict(dataset_meta=train.metainfo), state_dict={}), ckpt)
    cfg.model = dict(type='R2GenReportGenerator', tokenizer=cfg.tokenizer)
    vocab = restore_vocab_from_checkpoint(cfg, str(ckpt))
    assert vocab == train.tokenizer.vocab
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[key].dataset.tokenizer.vocab == vocab
    assert cfg.model.tokenizer.vocab == vocab
    # a config that cleans differently from training is flagged
    cfg.model.tokenizer.clean_mode = 'fixed'
    with pytest.warns(
            UserWarning,
            match="clean_mode='fixed' but the "
            "checkpoint was trained with clean_mode='r2gen'"):
        restore_vocab_from_checkpoint(cfg, str(ckpt))
    # with the vocab set, the annotation is no longer read for it
    other = cfg.test_dataloader.dataset
    other.tokenizer.ann_file = 'does/not/exist.json'
    other.data_root = str(iu_root)
    ds = IUXray(**{k: v for k, v in other.items() if k != 'type'})
    assert ds.tokenizer.vocab == vocab
    assert ds[0]['inputs'].shape == (2, 3, 224, 224)  # test pipeline


def test_resizes_match_r2gen_torchvision_transforms():
    """R2Gen resizes PIL images with torchvision: Resize(256) for train,
    Resize((224, 224)) for test. The config's pillow-backend transforms give
    the same pixels."""
    from torchvision import transforms as T

    from mmext.registry import TRANSFORMS
    cfg = Config.fromfile(osp.join(ROOT, 'configs/_base_/datasets/iu_xray.py'))
    test_views = TRANSFORMS.build(cfg.test_pipeline[1])
    train_resize = TRANSFORMS.build(cfg.train_pipeline[1].transforms[0])
    img = np.random.default_rng(0).integers(
        0, 256, (300, 260, 3), dtype=np.uint8)
    ref = np.asarray(T.Resize((224, 224))(Image.fromarray(img)))
    assert np.array_equal(test_views(dict(img=[img]))['img'][0], ref)
    ref = np.asarray(T.Resize(256)(Image.fromarray(img)))
    assert np.array_equal(train_resize(dict(img=img))['img'], ref)
