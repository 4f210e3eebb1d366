# Copyright (c) mmext contributors. All rights reserved.
"""Every shipped config, built as a user of mmpretrain would build it.

For each ``configs/**/*.py`` that defines a model (not ``_base_``, not the
HPO search spaces), in a process that has imported torch and mmpretrain but
not mmext: the config's ``custom_imports`` must bring mmext in, the model
builds through ``mmpretrain.apis.get_model`` with no data or weight file
(:func:`mmext.analysis.complexity.analysis_config`), runs one forward in its
test mode on generated inputs (per-family checks below) and is counted by
:func:`mmext.analysis.model_complexity` (the parts must cover every
parameter). Adding a config adds it here; a new model type needs a row in
``FORWARD_CHECKS`` and ``INFERENCER_CHECKS`` (one generated sample through
the family's inferencer: mmpretrain's for classifiers, mmext's ViLBERT /
report / BUTD inferencers for the rest).

One runner (this file run as a script, with ``forked_runs.py``) forks a
child per config, two at a time (``MMEXT_CONFIG_JOBS``), so the imports are
paid once: torch, mmpretrain, transformers and whatever else importing mmext
imports from outside mmext (learned in a throwaway fork;
``MMEXT_CONFIG_PRELOAD=0`` turns that off), never mmext itself.
"""
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest
from forked_runs import preload_third_party, run_all

ROOT = Path(__file__).resolve().parents[2]
SIZE = 32  # image side for forwards and FLOPs (ViT-B/16: 2 x 2 patches)
# backbones built for one input size: the config's test size
FIXED_SIZE = ('TinyViT', )
TEXT_LEN, NUM_REGIONS, BATCH = 8, 4, 2


def shipped_configs(root=ROOT):
    """Config files that define a model (``_base_`` and ``hpo`` excluded)."""
    return sorted(
        p for p in (root / 'configs').rglob('*.py')
        if not {'_base_', 'hpo'} & set(p.relative_to(root).parts))


# ------------------------------------------------------- per-family checks
# Each runs in the child on the built model (eval mode) and returns a short
# summary; an assert inside fails the config.
def check_classifier(model, cfg, size):
    import torch
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(0)
    data = dict(
        inputs=[
            torch.randint(0, 256, (3, size, size), generator=g).byte()
            for _ in range(BATCH)
        ],
        data_samples=[DataSample() for _ in range(BATCH)])
    out = model.test_step(data)
    classes = cfg.model.head.num_classes
    assert len(out) == BATCH
    for s in out:
        assert s.pred_score.shape == (classes, ), s.pred_score.shape
        assert abs(float(s.pred_score.sum()) - 1) < 1e-4
        assert 0 <= int(s.pred_label) < classes
    return f'{classes} classes'


def check_r2gen(model, cfg, size):
    import torch
    g = torch.Generator().manual_seed(0)
    views = torch.randint(0, 256, (2, 3, size, size), generator=g).byte()
    out = model.test_step(dict(inputs=[views] * BATCH))
    vocab = model.tokenizer.vocab_size
    for s in out:
        assert isinstance(s.pred_report, str)
        assert s.pred_tokens.numel() <= model.max_seq_length
        assert all(0 < int(t) <= vocab for t in s.pred_tokens)
    return f'reports of <= {model.max_seq_length} tokens'


def _vilbert_batch(vil, size, **extra):
    from mmext.analysis.complexity_families import vilbert_inputs
    inputs = vilbert_inputs(vil, (3, size, size), TEXT_LEN, NUM_REGIONS, BATCH)
    inputs.update(extra)
    return inputs


def check_vilbert_classifier(model, cfg, size):
    out = model(_vilbert_batch(model.vilbert, size), mode='predict')
    assert len(out) == BATCH
    for s in out:
        assert s.pred_score.shape == (model.num_classes, )
        assert ((s.pred_score >= 0) & (s.pred_score <= 1)).all()
    return f'{model.task}, {model.num_classes} score(s)'


def check_vilbert_pretrain(model, cfg, size):
    import torch
    mlm = torch.full((BATCH, TEXT_LEN), -100)
    mlm[:, 1] = 5
    out = model(
        _vilbert_batch(
            model, size, itm_labels=torch.tensor([1, 0]), mlm_labels=mlm),
        mode='predict')
    assert [r['itm_label'] for r in out] == [1, 0]
    assert all(0 <= r['itm_score'] <= 1 for r in out)
    assert [r['mlm_count'] for r in out] == [1, 1]
    return 'itm + mlm'


def shrink_butd(cfg):
    """A 64 px input and 8 ROIs instead of 600 px and 300."""
    cfg.model.test_cfg.update(
        target_size=SIZE * 2,
        max_size=SIZE * 3,
        pre_nms_top_n=64,
        post_nms_top_n=8,
        rpn_min_size=1)


def check_butd(model, cfg, size):
    import numpy as np
    img = np.random.default_rng(0).integers(
        0, 256, (SIZE * 2, SIZE * 3, 3), dtype=np.uint8)
    out, = model([img], mode='predict')
    r = len(out['rois'])
    assert 0 < r <= cfg.model.test_cfg.post_nms_top_n
    assert out['features'].shape == (r, model.roi_head.out_channels)
    assert np.allclose(out['cls_prob'].sum(1).numpy(), 1, atol=1e-4)
    assert out['cls_boxes'].shape == (r, cfg.model.num_classes, 4)
    return f'{r} regions'


#: model type -> (config shrink or None, test-mode forward check)
FORWARD_CHECKS = dict(
    ImageClassifier=(None, check_classifier),
    R2GenReportGenerator=(None, check_r2gen),
    ViLBERTClassifier=(None, check_vilbert_classifier),
    ViLBERT=(None, check_vilbert_pretrain),
    BUTDFasterRCNN=(shrink_butd, check_butd))


# ------------------------------------------------------ inferencer checks
# One generated sample through the family's inferencer (mmpretrain's for
# classifiers, mmext.apis.inferencers for the rest) on the built model.
def _image(h, w=None, seed=0):
    import numpy as np
    return np.random.default_rng(seed).integers(
        0, 256, (h, w or h, 3), dtype=np.uint8)


def _shrink_test_pipeline(model, cfg, size):
    """The test pipeline's resize / crop at ``size`` (the forward checks'
    size), so a 384 px config is not run at 384 px here."""
    from mmext.utils.config import iter_config
    for _, parent, key, _ in list(
            iter_config(cfg._cfg_dict['test_dataloader'])):
        if key in ('scale', 'crop_size') and isinstance(parent, dict):
            parent[key] = size
    model._config = cfg


def infer_classifier(model, cfg, size):
    from mmpretrain.apis import ImageClassificationInferencer
    if image_size(cfg) == SIZE:
        _shrink_test_pipeline(model, cfg, size)
    res, = ImageClassificationInferencer(model)(_image(size))
    assert 0 <= res['pred_label'] < cfg.model.head.num_classes
    assert abs(float(sum(res['pred_scores'])) - 1) < 1e-3


def _region_files(model, cfg):
    """Regions configs read ``<feature_dir>/<stem>.npz``: write one for
    ``x.jpg`` in a temporary folder and point the pipeline at it."""
    import tempfile

    import numpy as np

    from mmext.datasets.region_features import save_region_npz
    from mmext.utils.config import iter_config
    folder = tempfile.mkdtemp()
    for _, _, _, node in iter_config(cfg._cfg_dict['test_dataloader']):
        if isinstance(node, dict) and node.get('type') == 'LoadRegionFeatures':
            node.update(
                feature_dir=folder, feature_file=None, require_cls_prob=False)
    vis = model.visual if hasattr(model, 'visual') else model.vilbert.visual
    n, dims = NUM_REGIONS, vis.feature_dims
    boxes = np.array([[0, 0, 8, 8]] * n, np.float32) + np.arange(
        n, dtype=np.float32)[:, None]
    save_region_npz(
        f'{folder}/x.jpg'.replace('.jpg', '.npz'),
        dict(
            features=np.ones((n, dims), np.float32),
            boxes=boxes,
            image_h=32,
            image_w=32))
    model._config = cfg
    return f'{folder}/x.jpg'


def _tokenizer_folder(cfg):
    """The test pipeline's ``TokenizeCaption`` on a generated vocabulary
    (the config's BERT folder is not on disk here)."""
    import tempfile

    from mmext.testing.bert import make_bert_folder
    from mmext.utils.config import iter_config
    folder = str(make_bert_folder(tempfile.mkdtemp(), weights=None))
    for _, _, _, node in iter_config(cfg._cfg_dict['test_dataloader']):
        if isinstance(node, dict) and node.get('type') == 'TokenizeCaption':
            node['bert'] = folder


def infer_vilbert(model, cfg, size):
    from mmext.apis.inferencers import ViLBERTInferencer
    _shrink_test_pipeline(model, cfg, size)
    _tokenizer_folder(cfg)
    vil = getattr(model, 'vilbert', model)
    image = (
        _region_files(model, cfg)
        if type(vil.visual).__name__ == 'RegionVisualStream' else _image(size))
    res, = ViLBERTInferencer(model)((image, 'a photo of a flower'))
    if 'itm_score' in res:
        assert res['itm_score'] is None or 0 <= res['itm_score'] <= 1
    else:
        assert len(res['pred_score']) == model.num_classes


def infer_r2gen(model, cfg, size):
    from mmext.apis.inferencers import ReportInferencer
    _shrink_test_pipeline(model, cfg, size)
    from mmext.apis.report_generation import expected_views
    views = [_image(size, seed=i) for i in range(expected_views(cfg) or 1)]
    res, = ReportInferencer(model)([views])
    assert isinstance(res['report'], str)


def infer_butd(model, cfg, size):
    from mmext.apis.inferencers import BUTDInferencer
    res, = BUTDInferencer(model)(_image(SIZE * 2, SIZE * 3))
    assert len(res['boxes']) == len(res['objects']) > 0


#: model type -> check(model, cfg, size) through the family's inferencer
INFERENCER_CHECKS = dict(
    ImageClassifier=infer_classifier,
    R2GenReportGenerator=infer_r2gen,
    ViLBERTClassifier=infer_vilbert,
    ViLBERT=infer_vilbert,
    BUTDFasterRCNN=infer_butd)


# ------------------------------------------------------------------ runner
def image_size(cfg):
    """:data:`SIZE`, or the config's test size for :data:`FIXED_SIZE`."""
    from mmext.analysis.complexity import config_input_size
    from mmext.utils.config import iter_config
    fixed = any(
        isinstance(v, dict) and v.get('type') in FIXED_SIZE
        for _, _, _, v in iter_config(cfg._cfg_dict['model']))
    return config_input_size(cfg)[0] if fixed else SIZE


def run_one(path):
    """Build, forward and count one config; returns a JSON-able dict."""
    start = time.time()
    torch_threads(1)  # two forks share the two cores
    try:
        assert 'mmext' not in sys.modules, 'mmext imported before the config'
        from mmengine.config import Config
        from mmpretrain.apis import get_model
        cfg = Config.fromfile(path)
        brought = 'mmext' in sys.modules
        from mmext.analysis.complexity import analysis_config, model_complexity
        cfg, _ = analysis_config(cfg)
        kind = cfg.model.type
        assert kind in FORWARD_CHECKS, (
            f'no forward check for model type {kind}: add one to '
            'FORWARD_CHECKS in tests/test_configs/test_all_configs.py')
        shrink, check = FORWARD_CHECKS[kind]
        if shrink:
            shrink(cfg)
        model = get_model(cfg).eval()
        size = image_size(cfg)
        summary = check(model, cfg, size)
        if kind in INFERENCER_CHECKS:
            INFERENCER_CHECKS[kind](model, cfg, size)
        cx = model_complexity(
            cfg, (3, size, size),
            model=model,
            text_len=TEXT_LEN,
            num_regions=NUM_REGIONS,
            max_steps=2)
        unique = {id(p): p.numel() for p in model.parameters()}
        return dict(
            ok=True,
            brought=brought,
            type=kind,
            summary=summary,
            flops=cx.total_flops,
            params=cx.total_params,
            unique_params=sum(unique.values()),
            parts=[[p.name, p.flops, p.params, p.in_total] for p in cx.parts],
            seconds=round(time.time() - start, 1))
    except BaseException:  # reported by the parametrised test
        return dict(ok=False, error=traceback.format_exc()[-3000:])


def torch_threads(n):
    import torch
    torch.set_num_threads(n)


def main():
    # the parent: torch, mmpretrain and the third-party libraries mmext
    # builds on (transformers for BERT), shared by every fork; never mmext
    import mmpretrain.apis  # noqa: F401
    import torch
    import transformers  # noqa: F401
    torch.set_num_threads(1)
    assert 'mmext' not in sys.modules
    if os.environ.get('MMEXT_CONFIG_PRELOAD', '1') == '1':
        preload_third_party()
    out = sys.argv[sys.argv.index('--out') + 1]
    paths = [str(p) for p in shipped_configs()]
    jobs = int(os.environ.get('MMEXT_CONFIG_JOBS', 2))
    start = time.time()
    results = run_all(run_one, paths, jobs)
    results['_seconds'] = round(time.time() - start, 1)
    with open(out, 'w') as f:
        json.dump(results, f)


# ------------------------------------------------------------------- tests
@pytest.fixture(scope='module')
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('all_configs')
    out = tmp / 'results.json'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    # from an empty folder: no data/ or pretrain_pth/ next to it
    proc = subprocess.run([sys.executable, __file__, '--out',
                           str(out)],
                          cwd=tmp,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out) as f:
        return json.load(f)


def test_every_model_config_is_listed():
    paths = shipped_configs()
    assert len(paths) >= 50
    assert not any('_base_' in p.parts or 'hpo' in p.parts for p in paths)


@pytest.mark.parametrize(
    'config', [str(p) for p in shipped_configs()],
    ids=[
        p.relative_to(ROOT / 'configs').as_posix() for p in shipped_configs()
    ])
def test_config_builds_runs_and_counts(results, config):
    r = results[config]
    assert r['ok'], r['error']
    assert r['brought'], 'the config\'s custom_imports did not import mmext'
    assert r['flops'] > 0
    parts = {name: (flops, params) for name, flops, params, _ in r['parts']}
    assert 'other' not in parts, f'FLOPs outside the named parts: {parts}'
    assert r['params'] == r['unique_params']
    assert sum(p for _, p in parts.values() if p) == r['params'], parts
    assert sum(f for _, f, _, in_total in r['parts'] if in_total) == r['flops']


if __name__ == '__main__':
    main()
