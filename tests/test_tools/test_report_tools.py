# Copyright (c) mmext contributors. All rights reserved.
"""train.py -> test.py (reports.json / .csv) -> generate.py -> make_html.py
on a generated IU X-ray set with a tiny R2Gen model."""
import csv
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from mmext.testing import make_iu_xray

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'report'))

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
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('r2gen')
    root = make_iu_xray(tmp / 'iu', n_train=12, n_val=4, n_test=4, size=40)
    cfg = tmp / 'tiny_r2gen.py'
    cfg.write_text(CONFIG.format(
        base=osp.join(ROOT, 'configs/_base_/datasets/iu_xray.py'),
        runtime=osp.join(ROOT, 'configs/_base_/default_runtime.py'),
        root=str(root)))
    _run(osp.join(ROOT, 'tools/train.py'), str(cfg), '--work-dir',
         str(tmp / 'train'), cwd=tmp)
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
        _run(osp.join(ROOT, 'tools/test.py'), str(cfg), str(ckpt),
             '--work-dir', str(tmp / 'test'), cwd=tmp)
    finally:
        ann_path.write_text(json.dumps(ann))
    out, = glob.glob(str(tmp / 'test' / '*' / 'reports.json'))
    rows = json.loads(open(out).read())
    assert [r['study_id'] for r in rows] == [a['id'] for a in ann['test']]
    assert all(r['pred_report'] for r in rows)
    with open(out.replace('.json', '.csv')) as f:
        assert len(list(csv.DictReader(f))) == len(ann['test'])


def test_generate_matches_test_output_and_html(trained, capsys):
    import generate
    import make_html
    tmp, root, cfg, ckpt = trained
    out, = glob.glob(str(tmp / 'test' / '*' / 'reports.json'))
    row = json.loads(open(out).read())[2]
    report = generate.main([*row['img_path'], str(cfg), str(ckpt)])
    # the same study through the CLI gives the report test.py wrote
    assert report == row['pred_report']
    assert report in capsys.readouterr().out
    with pytest.raises(ValueError, match='uses 2 view'):
        generate.main([row['img_path'][0], str(cfg), str(ckpt)])

    page = make_html.main([out, '--out', str(tmp / 'page.html')])
    text = open(page).read()
    assert text.count('<tr>') == 1 + 4  # header + studies
    assert 'src="iu/images/' in text  # links relative to the page
    assert row['study_id'] in text
    embedded = make_html.main([out, '--out', str(tmp / 'e.html'),
                               '--embed', '--limit', '1'])
    assert 'data:image/jpeg;base64,' in open(embedded).read()
