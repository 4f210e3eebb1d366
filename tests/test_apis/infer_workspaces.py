# Copyright (c) mmext contributors. All rights reserved.
"""Tiny workspaces (generated data, the repo's tiny configs, checkpoints
with spread-out weights) shared by the inferencer and infer.py tests.

Each builder works in ``root`` and returns what the tests need; configs use
relative data paths, so the CLI runs with ``cwd=root`` and in-process code
reads the config with absolute paths patched in.
"""
import os
from contextlib import contextmanager

import numpy as np
import torch

from tests.conftest import ROOT

VILBERT_CONFIG = ROOT / 'configs/vilbert/vilbert_tiny_1xb4-pretrain_tiny-cc.py'
VILBERT_CLS_CONFIG = (
    ROOT / 'configs/vilbert/vilbert-cls_tiny_1xb4-ft_tiny-hateful-memes.py')
R2GEN_CONFIG = (
    ROOT / 'configs/r2gen/r2gen_tiny_1xb4-scratch_tiny-iu-xray-64px.py')
BUTD_ARCH = dict(
    stage_blocks=(1, 1, 1, 1),
    base_channels=4,
    rpn_channels=8,
    num_classes=7,
    num_attributes=5,
    attr_embed_dims=3,
    attr_hidden=6)
BUTD_CLASSES = ['__background__', 'car', 'tree', 'sky', 'dog', 'man', 'sign']
BUTD_ATTRIBUTES = ['__no_attribute__', 'red', 'big', 'old', 'wooden']


@contextmanager
def cwd(path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _spread(model, std=0.5, seed=0):
    """Random Linear weights large enough that scores differ per input."""
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=std)
    return model


def noise_image(path, hw=(48, 40), seed=0):
    import cv2
    img = np.random.RandomState(seed).randint(0, 256, hw + (3, ))
    cv2.imwrite(str(path), img.astype(np.uint8))
    return path


def make_vilbert_workspace(root):
    """``root/data/tiny_cc`` (images + BERT), ``root/data/tiny_hm`` and
    checkpoints ``vilbert.pth`` / ``vilbert_cls.pth``."""
    from mmext.apis import build_inference_model
    from mmext.testing import make_hateful_memes
    from mmext.testing.bert import make_bert_folder
    from mmext.testing.vilbert import make_vilbert_tiny_data
    make_vilbert_tiny_data(root / 'data/tiny_cc', num=6)
    make_hateful_memes(root / 'data/tiny_hm')
    make_bert_folder(
        root / 'data/tiny_hm/bert', extra_words=['hateful', 'friendly'])
    with cwd(root):
        for cfg, name in ((VILBERT_CONFIG, 'vilbert.pth'),
                          (VILBERT_CLS_CONFIG, 'vilbert_cls.pth')):
            model = _spread(build_inference_model(str(cfg)))
            torch.save(dict(state_dict=model.state_dict()), root / name)
    return root


def make_report_workspace(root):
    """``root/data/tiny_iu_xray`` and ``r2gen.pth`` (vocabulary in its
    meta, EOS held back so reports have words)."""
    from mmext.apis import build_inference_model
    from mmext.testing import make_iu_xray
    make_iu_xray(
        root / 'data/tiny_iu_xray', n_train=8, n_val=2, n_test=2, size=64)
    with cwd(root):
        model = build_inference_model(str(R2GEN_CONFIG))
    torch.manual_seed(0)
    for p in model.parameters():
        p.data.normal_(0, 0.5)
    model.head.logit.bias.data[0] = -3
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(dataset_meta=dict(vocab=model.tokenizer.vocab))),
        root / 'r2gen.pth')
    return root


def make_butd_workspace(root):
    """``butd_tiny.py`` (the BUTD config, tiny), ``butd_tiny.pth`` with VG
    style names in its meta and ``images/img<i>.png``."""
    from mmext.models.detectors import BUTDFasterRCNN
    test_cfg = dict(target_size=96, max_size=160, post_nms_top_n=40)
    model = _spread(BUTDFasterRCNN(**BUTD_ARCH, test_cfg=test_cfg))
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(
                dataset_meta=dict(
                    classes=BUTD_CLASSES, attributes=BUTD_ATTRIBUTES))),
        root / 'butd_tiny.pth')
    args = ', '.join(f'{k}={v!r}' for k, v in BUTD_ARCH.items())
    (root / 'butd_tiny.py').write_text(
        f"_base_ = ['{ROOT}/configs/butd/butd_faster-rcnn_r101-caffe-c4_vg"
        f".py']\nmodel = dict({args}, test_cfg={test_cfg!r})\n"
        'extract_cfg = dict(min_boxes=3, max_boxes=8)\n')
    (root / 'images').mkdir()
    for i, hw in enumerate([(60, 90), (120, 70), (64, 64)]):
        noise_image(root / 'images' / f'img{i}.png', hw, seed=i)
    return root
