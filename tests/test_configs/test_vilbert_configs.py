# Copyright (c) mmext contributors. All rights reserved.
"""configs/vilbert: every config trains on generated data (the full-size
ones with their schedules kept and the widths shrunk), the tiny config runs
through tools/train.py, tools/test.py and 2-process DDP, and missing weights
fail up front naming the file and how to get it."""
import json

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmext.apis import check_config_types, prepare_config
from mmext.datasets.transforms.vilbert import vilbert_collate
from mmext.registry import DATASETS, MODELS
from mmext.testing import shrink_runtime
from mmext.testing.bert import make_bert_folder
from mmext.testing.multimodal import make_conceptual_captions
from mmext.testing.vilbert import make_region_files, make_vilbert_tiny_data
from mmext.utils import register_all_modules, safe_torch_load
from mmext.utils.paths import MissingPretrainedError
from tests.conftest import ROOT, assert_ranks_identical, free_port, run_tool

register_all_modules()
VILBERT = ROOT / 'configs/vilbert'
FULL = 'vilbert_vit-base-p16-bert-base_1xb20-pretrain_cc.py'
REGIONS = 'vilbert_regions-bert-base_1xb20-pretrain_cc.py'
TINY = 'vilbert_tiny_1xb4-pretrain_tiny-cc.py'


@pytest.fixture(scope='module')
def ws(tmp_path_factory, tools_ahead):
    """Generated data in every layout the configs read, and a 12-layer
    32-d BERT standing in for pretrain_pth/bert-base-uncased; the tiny
    config's train → test tool runs start on it in the background (the
    in-process tests run meanwhile)."""
    ws = tmp_path_factory.mktemp('vilbert_ws')
    make_vilbert_tiny_data(ws / 'data/tiny_cc', num=16)
    cc = ws / 'data/conceptual_captions'
    for tsv in ('Train_GCC-training.tsv',
                'Validation_GCC-1.1.0-Validation.tsv'):
        make_conceptual_captions(cc, num=4, missing=0, tsv=tsv)
    make_region_files(cc / 'images', cc / 'regions', num_regions=4)
    make_bert_folder(
        ws / 'pretrain_pth/bert-base-uncased',
        config=dict(num_hidden_layers=12))
    tools_ahead.start('tiny_tools', ['test_tiny_config_train_test_tools'],
                      _tiny_train_test, ws)
    return ws


def _tiny_train_test(ws):
    run_tool([
        ROOT / 'tools/train.py', VILBERT / TINY, '--work-dir',
        'work_dirs/tiny', '--cfg-options',
        'default_hooks.checkpoint.interval=1'
    ],
             cwd=ws)
    run_tool([
        ROOT / 'tools/test.py', VILBERT / TINY, 'work_dirs/tiny/'
        'epoch_6.pth', '--out', 'work_dirs/tiny/m.json', '--out-item',
        'metrics'
    ],
             cwd=ws)


def test_config_types_and_recipe():
    for name in (FULL, REGIONS, TINY):
        check_config_types(Config.fromfile(str(VILBERT / name)))
    cfg = Config.fromfile(str(VILBERT / FULL))
    co = cfg.model.coattention
    assert (co.preset, co.bi_dims, co.num_heads) == ('thesis', 1024, 8)
    opt = cfg.optim_wrapper
    assert opt.type == 'AmpOptimWrapper' and opt.accumulative_counts == 26
    assert (opt.optimizer.type, opt.optimizer.lr,
            opt.optimizer.weight_decay) == ('AdamW', 1e-4, 0.01)
    warm, cos = cfg.param_scheduler
    assert warm.end == pytest.approx(0.1 * cfg.train_cfg.max_epochs)
    assert cos.end == pytest.approx(0.9 * cfg.train_cfg.max_epochs)
    assert cos.eta_min == pytest.approx(0.2 * opt.optimizer.lr)
    assert cfg.train_dataloader.batch_size == 20
    assert cfg.model.mim == dict(
        temperature=0.1, tokens='unmasked', include_cls=True)


def _shrink(cfg, work_dir):
    visual = cfg.model.visual
    if visual.type == 'RegionVisualStream':
        visual.update(embed_dims=64, num_heads=2, ffn_dims=64)
    else:  # 12 layers kept: the thesis schedule needs them
        visual.embed_dims = 32
        visual.backbone.update(
            arch=dict(
                embed_dims=32,
                num_layers=12,
                num_heads=2,
                feedforward_channels=32),
            init_cfg=None)
    cfg.model.coattention.update(bi_dims=32, num_heads=2)
    cfg.model.pooled_dims = 32
    if 'num_region_classes' in cfg.model:
        cfg.model.num_region_classes = 1601
    shrink_runtime(cfg, work_dir)
    cfg.train_cfg.max_epochs = 1  # 4 samples / 2 = 2 iterations
    return cfg


@pytest.mark.parametrize('name', [FULL, REGIONS])
def test_full_size_config_trains_two_iterations(name, ws, monkeypatch):
    monkeypatch.chdir(ws)
    cfg = Config.fromfile(str(VILBERT / name))
    if name == FULL:  # the ViT weights are not here: named up front
        with pytest.raises(
                MissingPretrainedError,
                match='convert_to_mmpretrain.py timm-vit'):
            prepare_config(cfg.copy())
    cfg = prepare_config(_shrink(cfg, ws / 'work' / name))
    runner = Runner.from_cfg(cfg)
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.train()
    assert runner.iter == 2
    after = runner.model.state_dict()
    changed = {
        k.split('.')[0]
        for k in after if not torch.equal(after[k], before[k])
    }
    assert {'bert', 'visual', 'coattn'} <= changed
    metrics = runner.val_loop.run()
    assert 'pretrain/itm_accuracy' in metrics


def test_missing_bert_folder_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(str(VILBERT / REGIONS))
    with pytest.raises(
            FileNotFoundError,
            match='pretrain_pth/bert-base-uncased.*huggingface'):
        MODELS.build(cfg.model)


def _losses(model, inputs):
    model.eval()  # no dropout: a fixed batch gives a fixed loss
    with torch.no_grad():
        return {k: v.item() for k, v in model.loss(inputs).items()}


def test_tiny_config_train_test_tools(ws, tools_ahead, monkeypatch):
    tools_ahead['tiny_tools']
    work = ws / 'work_dirs/tiny'
    metrics = json.loads((work / 'm.json').read_text())
    assert 'pretrain/itm_accuracy' in metrics

    # one fixed batch from the config's own pipeline and collate
    cfg = Config.fromfile(str(VILBERT / TINY))
    monkeypatch.chdir(ws)
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    torch.manual_seed(0)
    np.random.seed(0)
    batch = vilbert_collate([ds[i] for i in range(8)], itm_prob=0.5)
    model = MODELS.build(cfg.model)
    inputs = model.data_preprocessor(batch, True)['inputs']
    assert inputs['itm_labels'].float().mean() not in (0, 1)
    states = [
        safe_torch_load(str(work / f'epoch_{e}.pth'))['state_dict']
        for e in (1, 6)
    ]
    model.load_state_dict(states[0])
    early = _losses(model, inputs)
    model.load_state_dict(states[1])
    trained = _losses(model, inputs)
    assert set(early) == {'loss_mlm', 'loss_itm', 'loss_mim'}
    # 24 steps of pretraining lower MLM and MIM on unseen masks / views;
    # ITM needs cross-modal binding and stays near log 2 this early
    assert trained['loss_mlm'] < early['loss_mlm']
    assert trained['loss_mim'] < early['loss_mim']
    # from the trained checkpoint, every loss decreases on the fixed batch
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(20):
        model.eval()
        opt.zero_grad()
        sum(model.loss(inputs).values()).backward()
        opt.step()
    fitted = _losses(model, inputs)
    for k in trained:
        assert fitted[k] < trained[k], (k, trained[k], fitted[k])


def test_two_process_ddp_tiny(ws):
    cfg = ws / 'ddp_vilbert.py'
    cfg.write_text(
        f"_base_ = ['{VILBERT / TINY}']\n"
        "custom_hooks = [dict(type='DistConsistencyHook', interval=1, "
        "dump_dir='ranks')]\n")
    proc = run_tool([
        'bash', ROOT / 'tools/dist_train.sh', cfg, '2', '--work-dir',
        'work_dirs/ddp', '--cfg-options', 'train_cfg.max_epochs=2'
    ],
                    cwd=ws,
                    env={'PORT': free_port()})
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log
    assert 'identical on 2 ranks' in log
    assert_ranks_identical(ws / 'work_dirs/ddp/ranks')
