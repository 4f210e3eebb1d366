# Copyright (c) mmext contributors. All rights reserved.
"""The mmext inferencers against the models' own forwards on tiny generated
models and data: ViLBERT (ITM and a fine-tuned classifier, features and
co-attention maps), R2Gen (mmext's and mmpretrain's inferencers) and BUTD,
plus ViLBERT built outside the mmext scope."""
import glob
import subprocess
import sys

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmext.apis import (BUTDInferencer, ReportInferencer, ViLBERTInferencer,
                        build_inference_model, get_inferencer,
                        init_report_model, model_task)
from mmext.apis.inferencers import chexpert_labels, read_pairs_file
from mmext.utils.fileio import InputFileError
from tests.conftest import ROOT
from tests.test_apis import infer_workspaces as iw

cv2 = pytest.importorskip('cv2')


@pytest.fixture(scope='module')
def vil_ws(tmp_path_factory):
    return iw.make_vilbert_workspace(tmp_path_factory.mktemp('infer_vilbert'))


@pytest.fixture(scope='module')
def rep_ws(tmp_path_factory):
    return iw.make_report_workspace(tmp_path_factory.mktemp('infer_r2gen'))


@pytest.fixture(scope='module')
def butd_ws(tmp_path_factory):
    return iw.make_butd_workspace(tmp_path_factory.mktemp('infer_butd'))


# ------------------------------------------------------------------ ViLBERT
def _model_batch(model, pairs):
    """The test pipeline (no MLM masking) and collate, built here."""
    from mmengine.dataset import Compose

    from mmext.datasets.transforms.vilbert import vilbert_collate
    from mmext.registry import TRANSFORMS
    steps = []
    for t in model._config.test_dataloader.dataset.pipeline:
        t = dict(t)
        if t['type'] == 'TokenizeCaption':
            t['mlm_prob'] = 0
        steps.append(TRANSFORMS.build(t))
    pipe = Compose(steps)
    return vilbert_collate([pipe(dict(img_path=i, text=t)) for i, t in pairs],
                           itm_prob=0)


def _pairs(ws, n=4):
    images = sorted(glob.glob(str(ws / 'data/tiny_cc/images/*.jpg')))
    texts = ['red photo', 'a blue dark square', 'green', 'red small image']
    return list(zip(images[:n], texts[:n]))


def test_vilbert_itm_equals_model_predict(vil_ws, monkeypatch):
    monkeypatch.chdir(vil_ws)
    inferencer = ViLBERTInferencer(str(iw.VILBERT_CONFIG), 'vilbert.pth')
    pairs = _pairs(vil_ws)
    batched = inferencer(pairs, batch_size=3)
    single = [inferencer(p)[0] for p in pairs]
    model = inferencer.model
    data = _model_batch(model, pairs)
    data['inputs']['itm_labels'] = torch.ones(len(pairs), dtype=torch.long)
    with torch.no_grad():
        want = [r['itm_score'] for r in model.test_step(data)]
    got = [r['itm_score'] for r in batched]
    assert got == pytest.approx(want, abs=1e-5)
    assert [r['itm_score'] for r in single] == pytest.approx(want, abs=1e-5)
    assert max(want) - min(want) > 1e-3  # the pairs really differ
    assert [(r['image'], r['text']) for r in batched] == pairs
    # images + texts, and a BGR array, give the same scores
    images, texts = zip(*pairs)
    again = inferencer(list(images), list(texts), batch_size=2)
    assert [r['itm_score'] for r in again] == pytest.approx(got, abs=1e-5)
    arr = inferencer((mmcv.imread(pairs[0][0]), pairs[0][1]))[0]
    assert arr['image'] == '<array>'
    assert arr['itm_score'] == pytest.approx(got[0], abs=1e-5)


def test_vilbert_features_and_coattention_maps(vil_ws, monkeypatch):
    monkeypatch.chdir(vil_ws)
    inferencer = ViLBERTInferencer(str(iw.VILBERT_CONFIG), 'vilbert.pth')
    pairs = _pairs(vil_ws, 2)
    plain = inferencer(pairs, batch_size=2)
    res = inferencer(
        pairs, batch_size=2, return_layers=True, return_attention=True)
    assert [r['itm_score']
            for r in res] == pytest.approx([r['itm_score'] for r in plain],
                                           abs=1e-6)
    data = _model_batch(inferencer.model, pairs)
    with torch.no_grad():
        inputs = inferencer.model.data_preprocessor(data)['inputs']
        out = inferencer.model.extract_feat(inputs, return_layers=True)
    lengths = data['inputs']['attention_mask'].sum(1).tolist()
    for i, (r, n) in enumerate(zip(res, lengths)):
        feats, maps = r['features'], r['coattention']
        assert feats['text.1'].shape == (n, 32)  # padding cut off
        np.testing.assert_allclose(
            feats['text.1'], out['text_layers'][1][i, :n], atol=1e-5)
        np.testing.assert_allclose(
            feats['coattn.0.vision'],
            out['coattn_layers'][0]['vision'][i],
            atol=1e-5)
        t2v, v2t = maps['0.text_to_vision'], maps['0.vision_to_text']
        assert t2v.shape == (2, n, 17) and v2t.shape == (2, 17, n)
        np.testing.assert_allclose(t2v.sum(-1), 1, atol=1e-5)
        # text padding is masked: the real tokens take all the attention
        np.testing.assert_allclose(v2t.sum(-1), 1, atol=1e-5)


def test_vilbert_classifier_labels(vil_ws, monkeypatch):
    monkeypatch.chdir(vil_ws)
    inferencer = ViLBERTInferencer(
        str(iw.VILBERT_CLS_CONFIG), 'vilbert_cls.pth')
    images = sorted(glob.glob(str(vil_ws / 'data/tiny_hm/img/*.png')))[:3]
    pairs = [(img, t) for img, t in zip(images, ['red', 'hateful', 'cat'])]
    res = inferencer(pairs, batch_size=2)
    data = _model_batch(inferencer.model, pairs)
    with torch.no_grad():
        want = inferencer.model.test_step(data)
    for r, w in zip(res, want):
        score = float(w.pred_score[0])
        assert r['pred_score'] == pytest.approx([score], abs=1e-5)
        assert r['pred_label'] == int(score >= 0.5)
        assert r['pred_class'] == ('not hateful', 'hateful')[r['pred_label']]
    assert model_task(inferencer.model) == 'vilbert'


def test_pairs_file(tmp_path):
    img = iw.noise_image(tmp_path / 'a.png')
    (tmp_path / 'pairs.tsv').write_text('# image\ttext\na.png\ta red cat\n\n')
    assert read_pairs_file(str(tmp_path / 'pairs.tsv')) == [(str(img),
                                                             'a red cat')]
    bad = tmp_path / 'bad.tsv'
    bad.write_text('a.png\ta cat\nb.png only\n')
    with pytest.raises(InputFileError, match=r'bad.tsv: line 2 is not'):
        read_pairs_file(str(bad))
    bad.write_text('missing.png\ta cat\n')
    with pytest.raises(InputFileError, match='line 1 names image'):
        read_pairs_file(str(bad))


def test_vilbert_built_outside_the_mmext_scope(vil_ws):
    """mmpretrain's get_model (scope 'mmpretrain', the config's
    custom_imports register mmext) and mmpretrain's registry in the scope
    get_model leaves, in a fresh interpreter that imports mmpretrain
    first: the preprocessors are built from mmext's registry."""
    code = (
        'from mmpretrain.apis import get_model\n'
        f'm = get_model({str(iw.VILBERT_CONFIG)!r})\n'
        'assert type(m.data_preprocessor).__name__ == '
        "'ViLBERTDataPreprocessor', m.data_preprocessor\n"
        'from mmpretrain.registry import MODELS\n'
        'import mmext.models\n'
        'from mmext.testing.vilbert import TINY_VIT\n'
        "cfg = dict(type='ViLBERTClassifier', num_classes=1, task='binary',"
        " vilbert=dict(text=dict(folder='data/tiny_cc/bert'),"
        " visual=dict(type='PatchVisualStream', backbone=TINY_VIT,"
        ' embed_dims=32)))\n'
        'm = MODELS.build(cfg)\n'
        'for x in (m, m.vilbert):\n'
        "    assert type(x.data_preprocessor).__name__ == "
        "'ViLBERTDataPreprocessor'\n"
        "print('built')\n")
    proc = subprocess.run([sys.executable, '-c', code],
                          cwd=vil_ws,
                          capture_output=True,
                          text=True,
                          timeout=300,
                          env=dict(
                              __import__('os').environ,
                              PYTHONPATH=str(ROOT),
                              OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'built' in proc.stdout


# -------------------------------------------------------------------- R2Gen
def _generate_report_outputs(ws, studies, decode=None):
    from mmext.apis.report_generation import (build_report_model,
                                              build_report_pipeline,
                                              generate_report,
                                              load_report_config)
    cfg = load_report_config(str(iw.R2GEN_CONFIG), str(ws / 'r2gen.pth'))
    model = build_report_model(cfg, str(ws / 'r2gen.pth'))
    if decode:
        model.decode_cfg.update(decode)
    pipe = build_report_pipeline(cfg)
    return [generate_report(model, pipe, views) for views in studies]


def _noise_studies(root, n=3):
    studies = []
    for i in range(n):
        folder = root / f'study{i}'
        folder.mkdir(exist_ok=True)
        views = []
        for v in range(2):
            path = iw.noise_image(folder / f'{v}.png', (64, 64), seed=i + v)
            if i % 3 != 1:  # black, noise, white studies
                cv2.imwrite(str(path), np.full((64, 64, 3), 255 * (i % 3)))
            views.append(str(path))
        studies.append(views)
    return studies


def test_report_equals_generate_report(rep_ws, tmp_path):
    inferencer = ReportInferencer(
        str(iw.R2GEN_CONFIG), str(rep_ws / 'r2gen.pth'))
    studies = _noise_studies(tmp_path)
    want = _generate_report_outputs(rep_ws, studies)
    assert len(set(want)) > 1 and all(want)  # image-dependent, non-empty
    folders = [str(tmp_path / f'study{i}') for i in range(3)]
    batched = inferencer(folders, batch_size=2)
    assert [r['report'] for r in batched] == want
    assert batched[0]['images'] == studies[0]
    single = [inferencer(views)[0]['report'] for views in [studies]]
    assert single == want[:1]
    arrays = [[mmcv.imread(v) for v in views] for views in studies]
    res = inferencer(arrays, batch_size=3)
    assert [r['report'] for r in res] == want
    assert res[0]['images'] == ['<array>', '<array>']


def test_report_decode_chexpert_and_views(rep_ws, tmp_path):
    studies = _noise_studies(tmp_path, 2)
    greedy = ReportInferencer(
        str(iw.R2GEN_CONFIG),
        str(rep_ws / 'r2gen.pth'),
        decode=dict(strategy='greedy'))
    assert greedy.model.decode_cfg['strategy'] == 'greedy'
    res = greedy(studies, chexpert=True)
    want = _generate_report_outputs(rep_ws, studies, dict(strategy='greedy'))
    assert [r['report'] for r in res] == want
    for r in res:
        assert r['chexpert'] == chexpert_labels(r['report'])
    assert chexpert_labels('the heart is enlarged . no pneumothorax .') == {
        'Cardiomegaly': 1,
        'Pneumothorax': 0
    }
    with pytest.raises(ValueError, match=r'uses 2 view\(s\) per study'):
        greedy([studies[0][0]])


def test_mmpretrain_caption_inferencer_on_r2gen(rep_ws, tmp_path):
    """mmpretrain's ImageCaptionInferencer / inference_model pass one
    image array per sample (a one-view study)."""
    from mmpretrain.apis import ImageCaptionInferencer, inference_model
    model = init_report_model(str(iw.R2GEN_CONFIG), str(rep_ws / 'r2gen.pth'))
    images = [views[0] for views in _noise_studies(tmp_path, 2)]
    want = _generate_report_outputs(rep_ws, [[img] for img in images])
    got = ImageCaptionInferencer(model)(images, batch_size=2)
    assert [r['pred_caption'] for r in got] == want
    assert inference_model(model, images[1]) == {'pred_caption': want[1]}


def test_load_multi_view_images_arrays():
    from mmext.datasets.transforms import LoadMultiViewImages
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 0] = 255  # blue
    out = LoadMultiViewImages()(dict(img=bgr))
    assert len(out['img']) == 1 and out['img'][0][0, 0].tolist() == [0, 0, 255]
    assert out['img_shape'] == [(4, 5)]
    gray = LoadMultiViewImages()(dict(img=[np.ones((3, 3), np.uint8)] * 2))
    assert [im.shape for im in gray['img']] == [(3, 3, 3)] * 2
    with pytest.raises(KeyError, match='neither img_path nor img'):
        LoadMultiViewImages()(dict(study_id='s'))
    with pytest.raises(ValueError, match='view 0 is an array of shape'):
        LoadMultiViewImages()(dict(img=np.zeros((2, 2, 4), np.uint8)))


# --------------------------------------------------------------------- BUTD
def test_butd_boxes_equal_extract(butd_ws, tmp_path):
    from mmext.apis.butd_extraction import extract_regions, init_butd_detector
    from mmext.datasets.region_features import load_region_features
    cfg, ckpt = str(butd_ws / 'butd_tiny.py'), str(butd_ws / 'butd_tiny.pth')
    images = sorted(glob.glob(str(butd_ws / 'images/*.png')))
    model, _ = init_butd_detector(cfg, ckpt)
    extract_regions(
        model,
        images,
        str(tmp_path / 'npz'),
        select_cfg=dict(min_boxes=3, max_boxes=8),
        progress=False)
    inferencer = BUTDInferencer(cfg, ckpt)
    res = inferencer(images, batch_size=2, out_dir=str(tmp_path / 'vis'))
    for img, r in zip(images, res):
        stem = img.rsplit('/', 1)[1][:-4]
        want = load_region_features(str(tmp_path / 'npz' / f'{stem}.npz'))
        np.testing.assert_allclose(r['boxes'], want['boxes'], atol=1e-4)
        assert r['objects'] == [iw.BUTD_CLASSES[i] for i in want['object_ids']]
        np.testing.assert_allclose(r['object_scores'], want['object_scores'])
        assert 3 <= len(r['boxes']) <= 8
        drawn = cv2.imread(r['drawn'])
        assert drawn.shape == cv2.imread(img).shape
        assert (drawn != cv2.imread(img)).any()
    single = [inferencer(img)[0] for img in images]
    assert [s['boxes'] for s in single] == [r['boxes'] for r in res]
    arr = inferencer(cv2.imread(images[0]))[0]
    assert arr['image'] == '<array>' and arr['boxes'] == res[0]['boxes']


def test_get_inferencer_dispatch(butd_ws):
    cfg = Config.fromfile(str(butd_ws / 'butd_tiny.py'))
    assert model_task(cfg) == 'butd'
    assert isinstance(get_inferencer(cfg), BUTDInferencer)
    assert model_task(str(iw.R2GEN_CONFIG)) == 'report'
    assert model_task(str(iw.VILBERT_CLS_CONFIG)) == 'vilbert'
    assert model_task(
        str(ROOT / 'configs/tiny/resnet18_1xb8-scratch_'
            'tiny-64px.py')) == 'classification'
    model = build_inference_model(cfg, str(butd_ws / 'butd_tiny.pth'))
    assert model._dataset_meta['classes'] == iw.BUTD_CLASSES
    with pytest.raises(ValueError, match='does not fit the model'):
        with iw.cwd(butd_ws):
            bad = dict(state_dict={'x': torch.zeros(1)})
            torch.save(bad, 'bad.pth')
            build_inference_model(cfg, 'bad.pth')
