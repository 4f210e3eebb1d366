# Copyright (c) mmext contributors. All rights reserved.
"""Every configs/r2gen config builds, trains 2 iterations and validates on
generated IU X-ray / MIMIC-CXR data in R2Gen's layout, with the arch shrunk
by config overrides; missing weights fail up front with their source."""

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmext.apis import prepare_config
from mmext.testing import shrink_runtime
from mmext.testing.reports import make_iu_xray, make_mimic_cxr
from mmext.utils import register_all_modules, safe_torch_load
from mmext.utils.paths import MissingPretrainedError
from tests.conftest import ROOT

register_all_modules()
CONFIGS = sorted((ROOT / 'configs/r2gen').glob('*.py'))
VIT = dict(embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=32)


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp('r2gen_data')
    for name in ('iu_xray', 'tiny_iu_xray'):
        make_iu_xray(
            root / 'data' / name, n_train=4, n_val=2, n_test=2, size=48)
    make_mimic_cxr(
        root / 'data/mimic_cxr', n_train=4, n_val=2, n_test=2, size=48)
    return root


class SnapshotAfterInit(Hook):
    """Copies the weights after ``init_weights``, before the first step."""

    def before_train(self, runner):
        self.head = runner.model.head.logit.weight.detach().clone()
        state = runner.model.backbone.state_dict()
        self.backbone = {k: v.clone() for k, v in state.items()}


def inner_backbone(cfg):
    b = cfg.model.backbone
    return b.backbone if b.type == 'PartialFreeze' else b


def shrink(cfg, work_dir):
    b = inner_backbone(cfg)
    if b.type == 'ResNet':
        b.update(depth=18, stem_channels=8, base_channels=8)
        cfg.model.neck.in_channels = 64
    else:  # VisionTransformer / TRARViT: 7 x 7 patches at 224
        b.update(arch=dict(VIT), patch_size=32)
        cfg.model.neck.in_channels = VIT['embed_dims']
    b.init_cfg = None
    cfg.model.head.update(
        d_model=32,
        d_ff=32,
        num_layers=1,
        num_heads=4,
        rm_num_heads=4,
        rm_d_model=32)
    cfg.model.max_seq_length = 12
    shrink_runtime(cfg, work_dir)
    evaluators = cfg.val_evaluator if isinstance(
        cfg.val_evaluator, list) else [cfg.val_evaluator]
    for ev in evaluators:
        if ev.type == 'ReportMetric':
            ev.scorers = ('bleu', )  # no Java in a unit test
    cfg.train_cfg.max_epochs = 1  # 4 studies / batch 2 = 2 iterations
    cfg.train_cfg.val_interval = 1
    return cfg


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.stem)
def test_config_trains_two_iterations(path, data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(data_dir)
    cfg = Config.fromfile(str(path))
    cfg.launcher = 'none'
    if inner_backbone(cfg).get('init_cfg'):  # types and data are fine
        with pytest.raises(
                MissingPretrainedError, match='to get it: (wget|download)'):
            prepare_config(cfg.copy())
    cfg = prepare_config(shrink(cfg, tmp_path / 'work'))
    runner = Runner.from_cfg(cfg)
    model = runner.model
    snapshot = SnapshotAfterInit()
    runner.register_hook(snapshot)
    runner.train()
    head_before, backbone_before = snapshot.head, snapshot.backbone
    assert runner.iter == 2
    assert not torch.equal(model.head.logit.weight, head_before)

    frozen = bool(cfg.model.get('freeze'))
    changed = [
        not torch.equal(v, backbone_before[k])
        for k, v in model.backbone.state_dict().items()
    ]
    assert (not any(changed)) if frozen else any(changed)
    groups = runner.optim_wrapper.optimizer.param_groups
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    lrs = {id(p): g['lr'] for g in groups for p in g['params']}
    if frozen:  # the frozen backbone is not in the optimizer at all
        assert not backbone_ids & set(lrs)
    else:  # R2Gen: 5e-5 visual extractor, 1e-4 the rest
        head_lr = lrs[id(model.head.logit.weight)]
        assert {lrs[i] for i in backbone_ids} == {head_lr * 0.5}
    assert groups[0]['amsgrad'] and groups[0]['weight_decay'] == 5e-5

    ckpts = list((tmp_path / 'work').glob('best_report_BLEU_4*.pth'))
    assert len(ckpts) == 1, 'val BLEU-4 monitors the best checkpoint'
    meta = safe_torch_load(str(ckpts[0]))['meta']
    assert meta['dataset_meta']['vocab'] == model.tokenizer.vocab


def test_reference_recipes_match_r2gen():
    iu = Config.fromfile(
        str(ROOT / 'configs/r2gen/r2gen_resnet101_1xb16_iu-xray.py'))
    mimic = Config.fromfile(
        str(ROOT / 'configs/r2gen/r2gen_resnet101_1xb16_mimic-cxr.py'))
    assert iu.param_scheduler.step_size == 50
    assert iu.param_scheduler.gamma == 0.1
    assert iu.train_cfg.max_epochs == 100
    assert mimic.param_scheduler.step_size == 1
    assert mimic.param_scheduler.gamma == 0.8
    assert mimic.train_cfg.max_epochs == 30
    assert iu.model.max_seq_length == 60 and mimic.model.max_seq_length == 100
    assert iu.optim_wrapper.clip_grad == dict(type='value', clip_value=0.1)
    assert iu.train_dataloader.batch_size == 16
    head = iu.model.head
    assert (head.d_model, head.d_ff, head.num_layers, head.num_heads,
            head.rm_num_slots, head.rm_d_model) == (512, 512, 3, 8, 3, 512)
    assert iu.model.decode == dict(strategy='beam', beam_size=3)
