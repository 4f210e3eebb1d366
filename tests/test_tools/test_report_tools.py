# Copyright (c) mmext contributors. All rights reserved.
"""train.py -> test.py (reports.json / .csv) -> generate.py -> make_html.py
on a generated IU X-ray set with a tiny R2Gen model: the package functions
(mmext.apis.report_generation, mmext.visualization.report_html) in process,
the CLIs through run_tool."""
import csv
import glob
import json
import os.path as osp

import pytest

from mmext.apis.report_generation import (build_report_model,
                                          build_report_pipeline,
                                          check_study_views, generate_report,
                                          load_report_config)
from mmext.testing import make_iu_xray
from mmext.visualization.report_html import (read_reports_json,
                                             write_reports_html)
from tests.conftest import ROOT, run_tool

CONFIG = """
_base_ = [{base!r}, {runtime!r}]
data_root = {root!r}
tokenizer = dict(type='R2GenTokenizer', ann_file=data_root +
                 '/annotation.json', threshold=2, dataset='iu_xray')
_pipe = [dict(type='LoadMultiViewImages'),
         dict(type='ApplyToViews',
              transforms=[dict(type='Resize', scale=(32, 32))]),
         dict(type='PackReportInputs')]
_ds = dict(data_root=data_root, tokenizer=tokenizer, max_seq_length=20,
           pipeline=_pipe)
train_dataloader = dict(batch_size=4, num_workers=0,
                        persistent_workers=False, dataset=_ds)
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                      dataset=dict(_ds, split='val'))
test_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                       dataset=dict(_ds, split='test'))
val_evaluator = dict(type='ReportMetric', scorers=('bleu', 'rouge'))
test_evaluator = dict(type='ReportMetric', scorers=('bleu', 'rouge', 'cider'),
                      out_dir='auto')
model = dict(
    type='R2GenReportGenerator',
    backbone=dict(type='ResNet', depth=18, base_channels=8,
                  out_indices=(3, )),
    neck=dict(type='VisualTokenNeck', in_channels=64, out_channels=32),
    head=dict(type='R2GenHead', d_model=32, d_ff=32, num_layers=1,
              num_heads=4, rm_num_heads=4, rm_d_model=32),
    tokenizer=tokenizer, max_seq_length=20,
    decode=dict(strategy='beam', beam_size=2))
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3))
train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1,
                                     save_best='report/BLEU_4',
                                     rule='greater'))
"""


def _run(*args, cwd):
    return run_tool(args, cwd=cwd)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('r2gen')
    root = make_iu_xray(tmp / 'iu', n_train=12, n_val=4, n_test=4, size=40)
    cfg = tmp / 'tiny_r2gen.py'
    cfg.write_text(
        CONFIG.format(
            base=osp.join(ROOT, 'configs/_base_/datasets/iu_xray.py'),
            runtime=osp.join(ROOT, 'configs/_base_/default_runtime.py'),
            root=str(root)))
    _run(
        osp.join(ROOT, 'tools/train.py'),
        str(cfg),
        '--work-dir',
        str(tmp / 'train'),
        cwd=tmp)
    ckpt = tmp / 'train' / 'epoch_1.pth'
    assert ckpt.is_file()
    assert glob.glob(str(tmp / 'train' / 'best_report_BLEU_4_*.pth'))
    return tmp, root, cfg, ckpt


def test_test_py_writes_reports_with_vocab_from_checkpoint(trained):
    tmp, root, cfg, ckpt = trained
    ann_path = root / 'annotation.json'
    ann = json.loads(ann_path.read_text())
    # the train split is gone: a tokenizer rebuilt from data would have
    # only '<unk>'; test.py must take the vocabulary from the checkpoint
    ann_path.write_text(json.dumps(dict(ann, train=[])))
    try:
        _run(
            osp.join(ROOT, 'tools/test.py'),
            str(cfg),
            str(ckpt),
            '--work-dir',
            str(tmp / 'test'),
            cwd=tmp)
    finally:
        ann_path.write_text(json.dumps(ann))
    out, = glob.glob(str(tmp / 'test' / '*' / 'reports.json'))
    rows = json.loads(open(out).read())
    assert [r['study_id'] for r in rows] == [a['id'] for a in ann['test']]
    assert all(r['pred_report'] for r in rows)
    with open(out.replace('.json', '.csv')) as f:
        assert len(list(csv.DictReader(f))) == len(ann['test'])


def _test_rows(tmp):
    out, = glob.glob(str(tmp / 'test' / '*' / 'reports.json'))
    return out, json.loads(open(out).read())


def test_generate_matches_test_output(trained):
    tmp, root, cfg, ckpt = trained
    _, rows = _test_rows(tmp)
    row = rows[2]
    model_cfg = load_report_config(str(cfg), str(ckpt))
    check_study_views(model_cfg, row['img_path'])  # two views: accepted
    model = build_report_model(model_cfg, str(ckpt))
    report = generate_report(model, build_report_pipeline(model_cfg),
                             row['img_path'])
    # the same study outside the data set gives the report test.py wrote
    assert report == row['pred_report']
    with pytest.raises(
            ValueError,
            match=r'^tiny_r2gen\.py uses 2 view\(s\) '
            r'per study \(IUXray\), got 1 image\(s\)$'):
        check_study_views(model_cfg, row['img_path'][:1])


def test_generate_cli(trained):
    tmp, root, cfg, ckpt = trained
    _, rows = _test_rows(tmp)
    row = rows[2]
    proc = run_tool([
        osp.join(ROOT, 'tools/report/generate.py'), *row['img_path'], cfg, ckpt
    ],
                    cwd=tmp)
    assert proc.stdout.splitlines()[-1] == row['pred_report']


def test_make_html(trained):
    tmp, root, cfg, ckpt = trained
    out, rows = _test_rows(tmp)
    row = rows[2]
    proc = run_tool([
        osp.join(ROOT, 'tools/report/make_html.py'), out, '--out',
        tmp / 'page.html'
    ],
                    cwd=tmp)
    page = str(tmp / 'page.html')
    assert proc.stdout.strip() == f'wrote {page} ({len(rows)} studies)'
    text = open(page).read()
    assert text.count('<tr>') == 1 + 4  # header + studies
    assert 'src="iu/images/' in text  # links relative to the page
    assert row['study_id'] in text
    embedded = write_reports_html(
        read_reports_json(out)[:1], str(tmp / 'e.html'), embed=True)
    assert 'data:image/jpeg;base64,' in open(embedded).read()


def test_make_html_findings_and_refusal(tmp_path):
    rows = [
        dict(
            study_id='s1',
            img_path=[str(tmp_path / 'gone.png')],
            gt_report='the heart is enlarged . small pleural effusion .',
            pred_report='small pleural effusion . possible pneumonia .')
    ]
    page = open(write_reports_html(rows, str(tmp_path / 'p.html'))).read()
    assert '<span class="miss">Cardiomegaly</span>' in page
    assert '<span class="ok">Pleural Effusion</span>' in page
    assert '<span class="extra">Pneumonia</span>' in page
    assert f'missing {tmp_path / "gone.png"}' in page
    bad = tmp_path / 'metrics.json'
    bad.write_text(json.dumps({'BLEU_4': 0.1}))
    with pytest.raises(ValueError, match='metrics.json is not a reports'):
        read_reports_json(str(bad))
