# Copyright (c) mmext contributors. All rights reserved.
"""tools/infer.py end to end on a checkpoint trained 1 epoch from
configs/tiny/resnet18_1xb8-scratch_tiny-64px.py, checked against a hand-made
forward."""
import subprocess
import sys

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmext.apis import prepare_config
from mmext.testing import make_image_folder
from tests.conftest import ROOT, run_tool

CONFIG = ROOT / 'configs/tiny/resnet18_1xb8-scratch_tiny-64px.py'
TOOL = ROOT / 'tools/infer.py'


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('infer')
    make_image_folder(tmp / 'data/tiny', per_class=4, size=32)
    cfg = Config.fromfile(str(CONFIG))
    cfg.data_root = str(tmp / 'data/tiny')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = str(tmp / 'data/tiny')
    cfg.train_cfg.max_epochs = 1
    cfg.work_dir = str(tmp / 'work')
    cfg.launcher = 'none'
    Runner.from_cfg(prepare_config(cfg)).train()
    return tmp, tmp / 'work/epoch_1.pth'


def expected_scores(ckpt, image):
    """Softmax scores computed without the inferencer."""
    from mmext.registry import MODELS
    from mmext.utils import register_all_modules, safe_torch_load
    register_all_modules()
    cfg = Config.fromfile(str(CONFIG))
    cfg.model.data_preprocessor = cfg.data_preprocessor
    model = MODELS.build(cfg.model).eval()
    model.load_state_dict(safe_torch_load(str(ckpt))['state_dict'])
    img = mmcv.imread(str(image))  # BGR, as LoadImageFromFile
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    x = x[:, [2, 1, 0]]  # to_rgb
    pre = cfg.data_preprocessor
    x = (x - torch.tensor(pre.mean).view(1, 3, 1, 1)) / torch.tensor(
        pre.std).view(1, 3, 1, 1)
    with torch.no_grad():
        return model(x, mode='tensor').softmax(-1)[0]


def _python(args, cwd):
    return subprocess.run(
        [sys.executable] + [str(a) for a in args],
        capture_output=True,
        text=True,
        cwd=cwd)


@pytest.fixture(scope='module')
def runs(tools_ahead, trained, vilbert_ws, tmp_path_factory):
    """Every infer.py run of the module, started together (two at a time)
    once its workspace is there; ``runs[0][key]`` waits for one."""
    from tests.test_apis.infer_workspaces import (R2GEN_CONFIG,
                                                  VILBERT_CLS_CONFIG,
                                                  VILBERT_CONFIG,
                                                  make_butd_workspace,
                                                  make_report_workspace)
    start, tmp, ckpt = tools_ahead.start, trained[0], trained[1]
    image = tmp / 'data/tiny/val/class_2/2_1.png'
    start('topk', ['test_infer_cli_prints_topk'], _python,
          [TOOL, image, CONFIG, ckpt, '--topk', '2', '--device', 'cpu'], tmp)
    start('no_checkpoint', ['test_infer_missing_checkpoint_is_one_line'],
          _python, [TOOL, image, CONFIG, 'nope.pth'], tmp)

    test = ['test_infer_vilbert_text_and_pairs']
    images = sorted((vilbert_ws / 'data/tiny_cc/images').glob('*.jpg'))[:2]
    names = [str(p.relative_to(vilbert_ws)) for p in images]
    start(
        'vilbert_text',
        test,
        run_tool, [
            TOOL, *names, VILBERT_CONFIG, 'vilbert.pth', '--text',
            'a red photo', '--batch-size', '2', '--out', 'itm.json',
            '--features', 'feats'
        ],
        cwd=vilbert_ws)
    (vilbert_ws / 'pairs.tsv').write_text(''.join(f'{n}\ta red photo\n'
                                                  for n in names))
    start(
        'vilbert_pairs',
        test,
        run_tool, [
            TOOL, VILBERT_CONFIG, 'vilbert.pth', '--pairs', 'pairs.tsv',
            '--out', 'pairs.json'
        ],
        cwd=vilbert_ws)
    start(
        'vilbert_cls', ['test_infer_vilbert_classifier'],
        run_tool, [
            TOOL, 'data/tiny_hm/img/01000.png', VILBERT_CLS_CONFIG,
            'vilbert_cls.pth', '--text', 'a friendly cat', '--out', 'cls.json'
        ],
        cwd=vilbert_ws)
    start(
        'vilbert_no_text', ['test_infer_vilbert_needs_text'],
        run_tool,
        [TOOL, 'data/tiny_hm/img/01000.png', VILBERT_CONFIG, 'vilbert.pth'],
        cwd=vilbert_ws,
        check=False)

    test = ['test_infer_report_study_folders']
    report = make_report_workspace(tmp_path_factory.mktemp('infer_report'))
    studies = sorted((report / 'data/tiny_iu_xray/images').iterdir())[:2]
    names = [str(s.relative_to(report)) for s in studies]
    views = [f'{names[0]}/0.png', f'{names[0]}/1.png']
    start(
        'report',
        test,
        run_tool, [
            TOOL, *names, R2GEN_CONFIG, 'r2gen.pth', '--chexpert',
            '--batch-size', '2', '--out', 'reports.json'
        ],
        cwd=report)
    start(
        'report_greedy',
        test,
        run_tool,
        [TOOL, *views, R2GEN_CONFIG, 'r2gen.pth', '--decode', 'greedy'],
        cwd=report)
    start(
        'report_one_view',
        test,
        run_tool, [TOOL, views[0], R2GEN_CONFIG, 'r2gen.pth'],
        cwd=report,
        check=False)

    test = ['test_infer_butd_draws_regions']
    butd = make_butd_workspace(tmp_path_factory.mktemp('infer_butd'))
    start(
        'butd',
        test,
        run_tool, [
            TOOL, 'images/img1.png', 'butd_tiny.py', 'butd_tiny.pth',
            '--out-dir', 'vis', '--out', 'regions.json'
        ],
        cwd=butd)
    start(
        'butd_text',
        test,
        run_tool, [
            TOOL, 'images/img1.png', 'butd_tiny.py', 'butd_tiny.pth', '--text',
            'x'
        ],
        cwd=butd,
        check=False)
    return tools_ahead, dict(report=report, butd=butd)


def test_infer_cli_prints_topk(trained, runs):
    tmp, ckpt = trained
    image = tmp / 'data/tiny/val/class_2/2_1.png'
    res = runs[0]['topk']
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.strip().splitlines()]
    assert rows[0] == ['rank', 'index', 'score', 'class']
    assert len(rows) == 3
    scores = expected_scores(ckpt, image)
    best = scores.argsort(descending=True)[:2].tolist()
    for rank, (row, idx) in enumerate(zip(rows[1:], best), 1):
        assert int(row[0]) == rank and int(row[1]) == idx
        assert float(row[2]) == pytest.approx(float(scores[idx]), abs=1e-4)
        assert row[3] == f'class_{idx}'


def test_infer_missing_checkpoint_is_one_line(runs):
    res = runs[0]['no_checkpoint']
    assert res.returncode != 0
    assert res.stderr.strip() == 'checkpoint nope.pth not found'


def test_array_dataset_configs_get_rgb_files(tmp_path):
    """CIFAR pipelines hold RGB arrays; a file is read BGR, so the
    inferencer's preprocessor must swap channels."""
    from mmext.apis import init_classifier
    from mmext.registry import MODELS
    from mmext.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(
        str(ROOT / 'configs/trar_vit/vit-base-p16_8xb64-in21k-pre_cifar10.py'))
    cfg.model.backbone.update(
        arch=dict(
            embed_dims=16, num_layers=1, num_heads=2, feedforward_channels=16),
        patch_size=32,
        init_cfg=None)
    cfg.model.head.in_channels = 16
    model = MODELS.build(cfg.model)
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'c.pth')
    assert cfg.data_preprocessor.to_rgb is False
    inferencer = init_classifier(cfg, str(tmp_path / 'c.pth'))
    assert inferencer.model.data_preprocessor.to_rgb is True
    assert inferencer.classes[0] == 'airplane'  # CIFAR10 METAINFO


# ---------------------------------------------------- the other systems
# Each test runs the README's command for its system on a tiny workspace.
@pytest.fixture(scope='module')
def vilbert_ws(tmp_path_factory):
    from tests.test_apis.infer_workspaces import make_vilbert_workspace
    return make_vilbert_workspace(tmp_path_factory.mktemp('infer_vil_cli'))


def _json(path):
    import json
    return json.loads(path.read_text())


def test_infer_vilbert_text_and_pairs(vilbert_ws, runs):
    images = sorted((vilbert_ws / 'data/tiny_cc/images').glob('*.jpg'))[:2]
    names = [str(p.relative_to(vilbert_ws)) for p in images]
    proc = runs[0]['vilbert_text']
    rows = proc.stdout.strip().splitlines()
    assert rows[0].split() == ['image', 'text', 'itm_score']
    out = _json(vilbert_ws / 'itm.json')
    assert out['task'] == 'vilbert'
    scores = [r['itm_score'] for r in out['results']]
    for row, name, score in zip(rows[1:], names, scores):
        assert row.startswith(name) and row.endswith(f'{score:.4f}')
    feats = np.load(vilbert_ws / 'feats/1.npz')
    assert 'coattention/0.text_to_vision' in feats.files
    assert 'features/text.1' in feats.files
    # the same pairs from a file, checked against the inferencer
    runs[0]['vilbert_pairs']
    again = [
        r['itm_score'] for r in _json(vilbert_ws / 'pairs.json')['results']
    ]
    assert again == pytest.approx(scores, abs=1e-5)
    from mmext.apis import ViLBERTInferencer
    from tests.test_apis.infer_workspaces import VILBERT_CONFIG, cwd
    with cwd(vilbert_ws):
        want = ViLBERTInferencer(str(VILBERT_CONFIG),
                                 'vilbert.pth')([str(p) for p in images],
                                                'a red photo')
    assert scores == pytest.approx([r['itm_score'] for r in want], abs=1e-5)


def test_infer_vilbert_classifier(vilbert_ws, runs):
    proc = runs[0]['vilbert_cls']
    res = _json(vilbert_ws / 'cls.json')['results'][0]
    assert res['pred_class'] == ('not hateful', 'hateful')[res['pred_label']]
    assert res['pred_label'] == int(res['pred_score'][0] >= 0.5)
    assert proc.stdout.splitlines()[0].split() == [
        'image', 'text', 'label', 'class', 'score'
    ]
    assert res['pred_class'] in proc.stdout.splitlines()[1]


def test_infer_vilbert_needs_text(runs):
    proc = runs[0]['vilbert_no_text']
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        'ViLBERT configs need --text (with images) or --pairs FILE '
        '(without)')


def test_infer_report_study_folders(runs):
    from mmext.apis import ReportInferencer
    from tests.test_apis.infer_workspaces import R2GEN_CONFIG
    ws = runs[1]['report']
    studies = sorted((ws / 'data/tiny_iu_xray/images').iterdir())[:2]
    names = [str(s.relative_to(ws)) for s in studies]
    proc = runs[0]['report']
    out = _json(ws / 'reports.json')
    assert out['task'] == 'report'
    want = ReportInferencer(str(R2GEN_CONFIG),
                            str(ws / 'r2gen.pth'))([str(s) for s in studies],
                                                   chexpert=True)
    assert [r['report'] for r in out['results']] == [r['report'] for r in want]
    assert [r['chexpert']
            for r in out['results']] == [r['chexpert'] for r in want]
    for r in want:
        assert '  ' + r['report'] in proc.stdout
    assert proc.stdout.count('CheXpert:') == 2
    # the view files of one study, greedy
    views = [f'{names[0]}/0.png', f'{names[0]}/1.png']
    proc = runs[0]['report_greedy']
    greedy = ReportInferencer(
        str(R2GEN_CONFIG),
        str(ws / 'r2gen.pth'),
        decode=dict(strategy='greedy'))([[str(ws / v) for v in views]])
    assert proc.stdout.splitlines()[1].strip() == greedy[0]['report']
    bad = runs[0]['report_one_view']
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1].endswith(
        'uses 2 view(s) per study (IUXray), got 1 image(s)')


def test_infer_butd_draws_regions(runs):
    from mmext.apis import BUTDInferencer
    ws = runs[1]['butd']
    proc = runs[0]['butd']
    res = _json(ws / 'regions.json')['results'][0]
    want = BUTDInferencer(str(ws / 'butd_tiny.py'), str(ws / 'butd_tiny.pth'))(
        str(ws / 'images/img1.png'))[0]
    np.testing.assert_allclose(res['boxes'], want['boxes'], rtol=1e-6)
    assert res['objects'] == want['objects']
    assert res['drawn'] == 'vis/img1.png'
    assert mmcv.imread(str(ws / 'vis/img1.png')).shape == (120, 70, 3)
    lines = proc.stdout.splitlines()
    assert lines[0] == (f'images/img1.png ({len(want["boxes"])} regions, '
                        'drawn: vis/img1.png)')
    assert lines[1].split() == [
        '#', 'box', 'object', 'score', 'attribute', 'score'
    ]
    assert lines[2].split()[5] == want['objects'][0]
    bad = runs[0]['butd_text']
    assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1] == (
        '--text / --pairs are for ViLBERT configs; butd_tiny.py is a butd '
        'config')
