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


def test_tiny_finetune_beats_chance_and_writes_predictions(tmp_path):
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


@pytest.mark.parametrize('task,maker,keys', [
    ('mmimdb', 'make_mmimdb',
     ['multi-label/f1-micro', 'multi-label/f1-macro', 'multi-label/auroc']),
    ('upmc-food101', 'make_upmc_food101',
     ['accuracy/top1', 'single-label/f1-score']),
])
def test_tiny_finetune_runs_on_each_layout(tmp_path, task, maker, keys):
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
        'train_cfg.max_epochs=2'
    ],
             cwd=tmp_path)
    ckpt = sorted((tmp_path / 'work').glob('best_*.pth'))[-1]
    run_tool([
        ROOT / 'tools/test.py', cfg, ckpt, '--work-dir', 'work', '--out',
        'metrics.json', '--out-item', 'metrics'
    ],
             cwd=tmp_path)
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    assert all(k in metrics and metrics[k] == metrics[k] for k in keys), \
        metrics
