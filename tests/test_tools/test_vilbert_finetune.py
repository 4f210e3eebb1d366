# Copyright (c) mmext contributors. All rights reserved.
"""The tiny Hateful Memes config fine-tunes through tools/train.py (early
stopping, best checkpoint) and tools/test.py writes per-sample predictions."""
import json
import pickle

import pytest

from mmext.testing import make_hateful_memes
from mmext.testing.bert import make_bert_folder
from ..conftest import ROOT, run_tool

TINY_CFG = (
    ROOT / 'configs/vilbert/'
    'vilbert-cls_tiny_1xb4-ft_tiny-hateful-memes.py')

#: task -> metric of early stopping and save_best (threshold-free: F1 at
#: p > 0.5 stays 0 on MM-IMDb while the scores are still below 0.5)
MONITORED = {
    'hateful-memes': 'binary/auroc',
    'mmimdb': 'multi-label/auroc',
    'upmc-food101': 'accuracy/top1',
}


@pytest.mark.parametrize(
    'path',
    sorted((ROOT / 'configs/vilbert').glob('vilbert-cls_*.py')),
    ids=lambda p: p.stem)
def test_early_stopping_and_save_best_watch_one_metric(path):
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    task = next(t for t in MONITORED if path.stem.endswith(t))
    stop = [h for h in cfg.custom_hooks if h.type == 'EarlyStoppingHook']
    assert stop[0].monitor == MONITORED[task]
    assert cfg.default_hooks.checkpoint.save_best == MONITORED[task]


def _best_epoch(work, key):
    """Epoch of the first maximum of ``key`` in the run's scalars.json."""
    lines = sorted(work.glob('*/vis_data/scalars.json'))[-1].read_text()
    scores = [json.loads(line) for line in lines.splitlines()]
    scores = [(s[key], s['step']) for s in scores if key in s]
    best = max(v for v, _ in scores)
    return next(step for v, step in scores if v == best), scores


def _finetune_beats_chance_and_writes_predictions(tmp_path):
    make_hateful_memes(
        tmp_path / 'data/tiny_hm',
        sizes=dict(
            train=16, dev_seen=6, dev_unseen=6, test_seen=6, test_unseen=6))
    make_bert_folder(
        tmp_path / 'data/tiny_hm/bert', extra_words=['hateful', 'friendly'])
    run_tool([
        ROOT / 'tools/train.py', TINY_CFG, '--work-dir', 'work',
        '--cfg-options', 'train_cfg.max_epochs=3'
    ],
             cwd=tmp_path)
    best = sorted((tmp_path / 'work').glob('best_binary_auroc_epoch_*.pth'))
    assert best, 'save_best kept no checkpoint'
    run_tool([
        ROOT / 'tools/test.py', TINY_CFG, best[-1], '--work-dir', 'work',
        '--out', 'preds.pkl', '--out-item', 'pred'
    ],
             cwd=tmp_path)
    run_tool([
        ROOT / 'tools/test.py', TINY_CFG, best[-1], '--work-dir', 'work',
        '--out', 'metrics.json', '--out-item', 'metrics'
    ],
             cwd=tmp_path)
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    # image colour and caption word both carry the label: far above chance
    assert metrics['binary/auroc'] > 75, metrics
    # our own output file, written by mmengine's DumpResults
    preds = pickle.loads((tmp_path / 'preds.pkl').read_bytes())
    assert len(preds) == 12  # test_seen + test_unseen
    assert all(p['pred_score'].shape == (1, ) and 'gt_label' in p
               for p in preds)


LAYOUTS = {
    'mmimdb':
    ('make_mmimdb',
     ['multi-label/f1-micro', 'multi-label/f1-macro', 'multi-label/auroc']),
    'upmc-food101':
    ('make_upmc_food101', ['accuracy/top1', 'single-label/f1-score']),
}


def _finetune_runs_on_layout(tmp_path, task, maker, keys):
    """MM-IMDb (multi-label) and Food-101 (multi-class, SeededSplit
    validation) train and test through the tools on their real layouts."""
    import mmext.testing as testing
    cfg = ROOT / f'configs/vilbert/vilbert-cls_tiny_1xb4-ft_tiny-{task}.py'
    root = tmp_path / ('data/tiny_mmimdb'
                       if task == 'mmimdb' else 'data/tiny_food101')
    getattr(testing, maker)(root)
    make_bert_folder(root / 'bert')
    run_tool([
        ROOT / 'tools/train.py', cfg, '--work-dir', 'work', '--cfg-options',
        'train_cfg.max_epochs=3'
    ],
             cwd=tmp_path)
    # the kept checkpoint is the monitored metric's best epoch
    key = MONITORED[task]
    epoch, scores = _best_epoch(tmp_path / 'work', key)
    ckpt, = (tmp_path / 'work').glob('best_*.pth')
    assert ckpt.name == f'best_{key.replace("/", "_")}_epoch_{epoch}.pth', \
        scores
    if task == 'mmimdb':  # F1-macro would have kept epoch 1 here
        assert epoch > 1, scores
    run_tool([
        ROOT / 'tools/test.py', cfg, ckpt, '--work-dir', 'work', '--out',
        'metrics.json', '--out-item', 'metrics'
    ],
             cwd=tmp_path)
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    assert all(k in metrics and metrics[k] == metrics[k] for k in keys), \
        metrics


# ------------------------------------------------------------------- tests
# The three fine-tuning runs (train, then test) go on in the background from
# the first test on, two at a time (tests.conftest.ToolsAhead); each test
# waits for its own and fails with what failed there.
@pytest.fixture(scope='module')
def runs(tools_ahead, tmp_path_factory):
    tools_ahead.start(
        'hateful-memes',
        ['test_tiny_finetune_beats_chance_and_writes_predictions'],
        _finetune_beats_chance_and_writes_predictions,
        tmp_path_factory.mktemp('finetune_hateful_memes'))
    for task, (maker, keys) in LAYOUTS.items():
        tools_ahead.start(task, ['test_tiny_finetune_runs_on_each_layout'],
                          _finetune_runs_on_layout,
                          tmp_path_factory.mktemp(f'finetune_{task}'), task,
                          maker, keys)
    return tools_ahead


def test_tiny_finetune_beats_chance_and_writes_predictions(runs):
    runs['hateful-memes']


@pytest.mark.parametrize('task', list(LAYOUTS))
def test_tiny_finetune_runs_on_each_layout(runs, task):
    runs[task]
