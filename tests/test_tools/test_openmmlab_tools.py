# Copyright (c) mmext contributors. All rights reserved.
"""mmpretrain's own APIs and tools, unchanged, on an mmext config.

Every run is a fresh process that never imports mmext itself: the config's
``custom_imports`` (configs/_base_/default_runtime.py) must register the mmext
types where mmpretrain's ``'mmpretrain'`` scope finds them. The classifier
uses mmext types (PartialFreeze around a tiny TRARViT), which is what failed
with ``KeyError: 'PartialFreeze is not in the mmpretrain::model registry'``.
"""
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from ..conftest import ROOT, TINY_CONFIG, run_tool

TINY_MMEXT_CLASSIFIER = f"""
_base_ = ['{ROOT}/configs/tiny/resnet18_1xb8-scratch_tiny-64px.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='PartialFreeze',
        frozen_stages=1,
        backbone=dict(
            type='TRARViT',
            arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                      feedforward_channels=48),
            img_size=64,
            patch_size=16,
            # the default nested kernel is an autograd.Function that
            # torch.jit.trace (get_flops) cannot record
            attn_impl='per_span')),
    neck=None,
    head=dict(in_channels=32))
"""

# run in a child interpreter; mmext must not be imported by hand
GET_MODEL_AND_INFER = """
import json, sys
import torch
from mmengine.runner import save_checkpoint
from mmpretrain.apis import ImageClassificationInferencer, get_model
assert 'mmext' not in sys.modules
cfg, images, out = sys.argv[1], sys.argv[2:-1], sys.argv[-1]
torch.manual_seed(0)
model = get_model(cfg)
save_checkpoint({'state_dict': model.state_dict(),
                 'meta': {'dataset_meta': {'classes': ['0', '1', '2']}}},
                'model.pth')
# the Inferencer on the config + saved weights, and on the built model
preds = ImageClassificationInferencer(cfg, pretrained='model.pth')(images)
direct = ImageClassificationInferencer(model)(images)
json.dump(dict(
    backbone=type(model.backbone).__name__,
    inner=type(model.backbone.layers[0].attn).__module__,
    labels=[int(p['pred_label']) for p in preds],
    scores=[p['pred_scores'].tolist() for p in preds],
    direct=[p['pred_scores'].tolist() for p in direct]), open(out, 'w'))
"""


@pytest.fixture(scope='module')
def tiny_mmext_config(tiny_workspace):
    path = tiny_workspace / 'tiny_mmext_classifier.py'
    path.write_text(TINY_MMEXT_CLASSIFIER)
    return path


def _mim_bin():
    mim = shutil.which('mim', path=str(Path(sys.executable).parent))
    if mim is None:
        pytest.fail('openmim is not installed: pip install -r '
                    'requirements/mim.txt')
    return mim


def _require(module):
    """make setup installs the optional tools: missing is a failure."""
    import importlib.util
    if importlib.util.find_spec(module) is None:
        pytest.fail(f'{module} is not installed: pip install -r '
                    'requirements/optional.txt')


def _val_images(ws):
    return sorted((ws / 'data/tiny/val').rglob('*.png'))


@pytest.fixture(scope='module')
def predictions(tiny_workspace, tiny_mmext_config):
    """get_model and the Inferencer in one fresh process; also saves
    ``model.pth`` for the tools below. (``mmpretrain.inference_model`` only
    serves ModelHub names whose metafile lists a Results task, which no
    config path has.)"""
    ws = tiny_workspace
    images = _val_images(ws)
    script = ws / 'get_model_and_infer.py'
    script.write_text(GET_MODEL_AND_INFER)
    run_tool([script, tiny_mmext_config] + images + [ws / 'preds.json'], ws)
    return json.loads((ws / 'preds.json').read_text())


def test_get_model_and_inferencer_build_mmext_types(predictions):
    assert predictions['backbone'] == 'TRARViT'
    assert predictions['inner'].startswith('mmext.')
    scores = np.array(predictions['scores'])
    assert scores.shape[1] == 3
    np.testing.assert_allclose(scores.sum(1), 1, atol=1e-5)
    assert predictions['labels'] == scores.argmax(1).tolist()
    # weights loaded by the Inferencer from model.pth = the built model's
    np.testing.assert_allclose(scores, predictions['direct'], atol=1e-6)
    # random init gives different scores per image, so equality above is
    # not two constant outputs agreeing
    assert np.ptp(scores[:, 0]) > 1e-4


def test_confusion_matrix_runs(tiny_workspace, predictions, tiny_mmext_config):
    """``mim run mmpretrain confusion_matrix`` tests the checkpoint through
    the config's own test loop (its ``--out`` pickle is not read here: no
    unrestricted unpickling in mmext, so the plot is checked)."""
    from PIL import Image
    ws = tiny_workspace
    out = run_tool([
        _mim_bin(), 'run', 'mmpretrain', 'confusion_matrix', tiny_mmext_config,
        'model.pth', '--show-path', 'cm.png', '--include-values'
    ], ws).stdout
    assert 'The confusion matrix is saved at cm.png' in out
    assert min(Image.open(ws / 'cm.png').size) > 100


def test_mmpretrain_test_tool_accuracy_matches_inferencer(
        tiny_workspace, predictions, tiny_mmext_config):
    """``mim test mmpretrain`` on the mmext config and checkpoint reports
    the accuracy recounted from the Inferencer's predictions."""
    ws = tiny_workspace
    out = run_tool([
        _mim_bin(), 'test', 'mmpretrain', tiny_mmext_config, '--checkpoint',
        'model.pth', '--work-dir', 'mmpre_test'
    ], ws)
    text = out.stdout + out.stderr
    top1 = float(re.search(r'accuracy/top1: ([0-9.]+)', text).group(1))
    # mmpretrain's CustomDataset: classes are the sorted folder names
    folders = sorted(p.name for p in (ws / 'data/tiny/val').iterdir())
    images = _val_images(ws)
    truth = [folders.index(p.parent.name) for p in images]
    hits = sum(t == p for t, p in zip(truth, predictions['labels']))
    assert top1 == pytest.approx(100 * hits / len(images), abs=1e-3)


def test_get_flops(tiny_workspace, tiny_mmext_config):
    from mmext.apis.metafile import count_complexity
    out = run_tool([
        _mim_bin(), 'run', 'mmpretrain', 'get_flops', tiny_mmext_config,
        '--shape', '64', '64'
    ], tiny_workspace).stdout
    flops = next(x for x in out.splitlines() if x.startswith('Flops:'))
    params = next(x for x in out.splitlines() if x.startswith('Params:'))
    # get_flops skips fused attention; without it ours is the same count
    plain = count_complexity(str(tiny_mmext_config), 64, count_sdpa=False)
    assert flops.split()[1] == plain['flops_str']
    assert params.split()[1] == plain['params_str']
    full = count_complexity(str(tiny_mmext_config), 64)
    assert full['params'] == plain['params']
    assert full['flops'] > plain['flops'] > 0


def test_vis_cam_on_mmext_model(tiny_workspace, predictions,
                                tiny_mmext_config):
    """``mim run mmpretrain vis_cam`` (grad-cam < 1.5: mmpretrain 1.2 passes
    ``use_cuda``) on the TRARViT inside PartialFreeze, ViT-style."""
    from PIL import Image
    _require('pytorch_grad_cam')
    ws = tiny_workspace
    image = _val_images(ws)[0]
    run_tool([
        _mim_bin(), 'run', 'mmpretrain', 'vis_cam', image, tiny_mmext_config,
        'model.pth', '--target-layers', 'backbone.layers.1.ln1', '--vit-like',
        '--num-extra-tokens', '1', '--save-path', 'cam.png'
    ], ws)
    cam = np.asarray(Image.open(ws / 'cam.png').convert('RGB'), np.float32)
    raw = np.asarray(Image.open(image).convert('RGB'), np.float32)
    assert cam.shape == raw.shape
    # the heat map is blended over the image: it differs, and not by a
    # constant shift
    diff = cam - raw
    assert np.abs(diff).mean() > 1 and diff.std() > 1


TENSORBOARD_CONFIG = """
_base_ = ['{base}']
visualizer = dict(vis_backends=[
    dict(type='LocalVisBackend'),
    dict(type='TensorboardVisBackend'),
])
"""


@pytest.fixture(scope='module')
def logged_run(tiny_workspace):
    """One short training with the local and TensorBoard backends."""
    _require('tensorboard')
    ws = tiny_workspace
    # the README's recipe: a config adding the backend
    cfg = ws / 'tiny_tensorboard.py'
    cfg.write_text(TENSORBOARD_CONFIG.format(base=TINY_CONFIG))
    run_tool([
        ROOT / 'tools/train.py', cfg, '--work-dir', 'logged', '--cfg-options',
        'train_cfg.max_epochs=2', 'default_hooks.logger.interval=2'
    ], ws)
    return next((ws / 'logged').glob('*/vis_data'))


def test_tensorboard_backend_logs_the_scalars(logged_run):
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    records = [
        json.loads(line)
        for line in (logged_run / 'scalars.json').read_text().splitlines()
    ]
    local = {r['step']: r['loss'] for r in records if 'loss' in r}
    events = EventAccumulator(str(logged_run))
    events.Reload()
    assert 'loss' in events.Tags()['scalars']
    board = {e.step: e.value for e in events.Scalars('loss')}
    assert len(local) >= 4 and board.keys() == local.keys()
    np.testing.assert_allclose([board[k] for k in sorted(local)],
                               [local[k] for k in sorted(local)],
                               rtol=1e-6)
    assert 'accuracy/top1' in events.Tags()['scalars']


def test_analyze_logs_plot_curve(tiny_workspace, logged_run):
    """``analyze_logs plot_curve`` on the run's ``vis_data/scalars.json``."""
    from PIL import Image
    ws = tiny_workspace
    out = run_tool([
        _mim_bin(), 'run', 'mmpretrain', 'analyze_logs', 'plot_curve',
        logged_run / 'scalars.json', '--keys', 'loss', '--out', 'curve.png'
    ], ws)
    assert 'save curve to: curve.png' in out.stdout + out.stderr
    assert min(Image.open(ws / 'curve.png').size) > 100


def _model_index():
    from mim.commands.search import convert2df
    from modelindex.load_model_index import load
    index = load(str(ROOT / 'model-index.yml'))
    index.build_models_with_collections()
    return index, convert2df(index)  # the table `mim search mmext` prints


def test_mim_search_lists_every_config_with_complexity():
    from mmext.apis.metafile import model_families
    index, table = _model_index()
    configs = {
        p.relative_to(ROOT).as_posix()
        for family in model_families(ROOT) for p in family.glob('*.py')
    }
    listed = {
        Path(c).resolve().relative_to(ROOT).as_posix()
        for c in table['config']
    }
    assert listed == configs, 'run tools/analysis_tools/update_metafiles.py'
    assert len(configs) > 40
    assert not any(m.results for m in index.models)
    import yaml
    for family in model_families(ROOT):
        with open(family / 'metafile.yml') as f:
            metafile = yaml.safe_load(f)
        for model in metafile['Models']:
            meta = model['Metadata']
            assert {'FLOPs', 'Parameters'} <= set(meta), model['Name']
            if meta['FLOPs'] is None or meta['Parameters'] is None:
                assert meta.get('Complexity Note'), model['Name']
            # no mmext run is published: published numbers are the
            # papers', in the collection
            assert 'Results' not in model, model['Name']
        for collection in metafile['Collections']:
            published = collection.get('Published Results')
            if published:
                assert 'not reproduced by mmext' in published['Source']


def test_metafile_numbers_are_computed():
    """Stored numbers = a fresh count; ViT-B/16 = mmpretrain's own published
    metafile (the fused-attention FLOPs included)."""
    import mmpretrain
    import yaml

    from mmext.apis.metafile import count_complexity
    index, _ = _model_index()
    meta = {m.name: m.metadata.data for m in index.models}
    tiny = count_complexity(str(TINY_CONFIG))
    assert (meta[TINY_CONFIG.stem]['FLOPs'],
            meta[TINY_CONFIG.stem]['Parameters']) == (tiny['flops'],
                                                      tiny['params'])
    upstream = Path(mmpretrain.__file__).parent / \
        '.mim/configs/vision_transformer/metafile.yml'
    with open(upstream) as f:
        models = {
            m['Name']: m['Metadata']
            for m in yaml.safe_load(f)['Models']
        }
    for ours, theirs in [
        ('vit-base-p16_8xb64-in21k-pre_in1k', 'vit-base-p16_32xb128-mae_in1k'),
        ('vit-base-p16_8xb64-in21k-pre_in1k-384px',
         'vit-base-p16_in21k-pre_3rdparty_in1k-384px'),
    ]:
        assert meta[ours]['FLOPs'] == models[theirs]['FLOPs'], ours
        assert meta[ours]['Parameters'] == models[theirs]['Parameters']


def test_mmext_types_resolve_in_mmpretrain_scope_without_shadowing():
    """The mechanism: configs import the registering packages, and every
    mmext entry is reachable from mmpretrain's registries (by its own name
    where that is free, else as ``mmext.<name>``), never replacing an
    upstream type."""
    from mmengine.config import Config
    from mmpretrain import registry as upstream

    from mmext import registry as ours
    from mmext.utils import register_all_modules
    from mmext.utils.setup_env import REGISTERING_MODULES
    runtime = Config.fromfile(str(ROOT / 'configs/_base_/default_runtime.py'))
    assert tuple(runtime.custom_imports['imports']) == REGISTERING_MODULES
    assert runtime.custom_imports['allow_failed_imports'] is False
    register_all_modules(init_default_scope=False)
    assert 'PartialFreeze' in ours.MODELS.module_dict
    shadowed = []
    for name in ours.__all__:
        child = getattr(ours, name)
        if not isinstance(child, ours.MirroredRegistry):
            continue
        for key, obj in child.module_dict.items():
            assert child.parent.get(f'mmext.{key}') is obj, (name, key)
            if child.parent.get(key) is not obj:
                shadowed.append(key)
                assert child.parent.get(key).__module__.split('.')[0] in (
                    'mmpretrain', 'mmengine'), key
    # the two names mmext overrides keep their upstream meaning there
    assert sorted(shadowed) == ['AmpOptimWrapper', 'Flowers102']
    assert upstream.DATASETS.get('Flowers102').__module__.startswith(
        'mmpretrain')


def test_mirrored_registry_rules():
    """On private registries: mirrored when free, never shadowing, and a
    forced re-registration updates the mirror."""
    from mmengine.registry import Registry

    from mmext.registry import MirroredRegistry
    parent = Registry('probe', scope='probe_parent')
    child = MirroredRegistry('probe', parent=parent, scope='probe_child')

    @parent.register_module()
    class Upstream:
        pass

    @child.register_module(name='Upstream')
    class Override:
        pass

    @child.register_module()
    class Ours:
        pass

    assert parent.get('Upstream') is Upstream  # not shadowed
    assert child.get('Upstream') is Override
    assert parent.get('Ours') is Ours

    class OursV2:
        pass

    child.register_module(name='Ours', module=OursV2, force=True)
    assert parent.get('Ours') is OursV2 and child.get('Ours') is OursV2
