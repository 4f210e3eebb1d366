# Copyright (c) mmext contributors. All rights reserved.
"""Split and annotation files that would train on wrong labels are refused
when the data set is built, with one line naming the file, the key (or
study) and the first bad value; ``verify`` reports the same line."""
import json
import os
import re
import shutil

import numpy as np
import pytest
import scipy.io

from mmext.datasets import MIMICCXR, AnnotationError, Flowers17, IUXray
from mmext.datasets.flowers import Flowers102
from mmext.registry import DATASETS
from mmext.testing import make_flowers17, make_flowers102
from mmext.testing.reports import make_iu_xray, make_mimic_cxr
from tests.conftest import ROOT, run_tool

LOAD_PACK = [dict(type='LoadMultiViewImages'), dict(type='PackReportInputs')]


@pytest.fixture(scope='module')
def f17(tmp_path_factory):
    return make_flowers17(tmp_path_factory.mktemp('f17'), per_class=4, size=8)


@pytest.fixture(scope='module')
def f102(tmp_path_factory):
    root = tmp_path_factory.mktemp('f102')
    make_flowers102(root, per_class=3, size=8)
    return root


def _mat(path):
    return {
        k: v
        for k, v in scipy.io.loadmat(path).items() if not k.startswith('__')
    }


@pytest.fixture
def edit_mat():
    """``edit(path, key=array, ...)`` rewrites a .mat file; every file is
    restored after the test."""
    saved = {}

    def edit(path, **arrays):
        saved.setdefault(path, _mat(path))
        scipy.io.savemat(path, dict(_mat(path), **arrays))
        return saved[path]

    yield edit
    for path, mat in saved.items():
        scipy.io.savemat(path, mat)


def _row(values, dtype=np.float64):
    return np.asarray(values, dtype=dtype)[None]


def test_flowers17_refuses_each_violation(f17, edit_mat):
    mat = edit_mat(f17 / 'datasplits.mat')
    trn1, tst1, val2 = (
        mat[k].ravel().astype(int) for k in ('trn1', 'tst1', 'val2'))
    no_class_0 = [i for i in tst1 if (i - 1) // 4 != 0]  # no Daffodil
    cases = [
        # (key: new value, message after "datasplits.mat in <root> ")
        (dict(tst1=tst1[:, None]),
         rf"key 'tst1' has shape \({tst1.size}, 1\); expected one row"),
        (dict(val2=np.stack([val2, val2])), r"key 'val2' has shape \(2, "),
        (dict(trn1=_row([])), "key 'trn1' is empty"),
        (dict(val2=_row(list(val2[:-1]) + [7.5])),
         r"key 'val2' holds non-integer values, first \[7.5\]"),
        (dict(trn1=_row(list(trn1) + [trn1[3]])),
         f"key 'trn1' lists 1 indices more than once, first {trn1[3]}"),
        (dict(tst1=_row(list(tst1) + [trn1[0]])),
         f'split 1: 1 images are in both test and train '
         rf"\(keys 'tst1', 'trn1'\), first {trn1[0]}"),
        (dict(tst1=_row(no_class_0)),
         r"key 'tst1' has no image of 1 of 17 classes, first class 0 "
         r'\(Daffodil\)'),
        # a stray index 85 = 17 x 5 would make it 5 images per class
        (dict(tst2=_row(list(mat['tst2'].ravel()) + [85])),
         r"key 'tst2' holds the largest index, 85, but jpg/image_0085.jpg "
         'is no image file'),
        (dict(val1=_row([0, 3])),
         r"key 'val1' has indices out of range 1\.\.68 \(4 per class\): "
         r'\[0\]'),
    ]
    for change, message in cases:
        edit_mat(f17 / 'datasplits.mat', **dict(mat, **change))
        for split in ('train', 'test'):  # any split refuses a bad file
            with pytest.raises(ValueError) as e:
                DATASETS.build(
                    dict(
                        type='Flowers17',
                        data_root=str(f17),
                        split=split,
                        split_id=3))
            msg = str(e.value)
            assert f'Flowers17: datasplits.mat in {f17} ' in msg, msg
            assert re.search(message, msg), msg
            assert msg.endswith('tools/dataset_converters/flowers17.py '
                                'verify') and '\n' not in msg
    edit_mat(f17 / 'datasplits.mat', **mat)
    assert len(Flowers17(str(f17), split='test', split_id=3)) == 17


def test_flowers17_fifo_image_reported(tmp_path):
    root = make_flowers17(tmp_path, per_class=3, size=8)
    image = Flowers17(str(root), split='train').get_data_info(1)['img_path']
    os.unlink(image)
    os.mkfifo(image)
    name = os.path.basename(image)
    with pytest.raises(
            ValueError,
            match=r'1 of 17 images .* no regular '
            rf'file .* first jpg/{name} \(a FIFO\)'):
        Flowers17(str(root), split='train')


def test_flowers17_verify_prints_the_data_set_error(f17, edit_mat):
    mat = edit_mat(f17 / 'datasplits.mat')
    bad = _row(list(mat['val3'].ravel()) + [mat['trn3'].ravel()[0]])
    edit_mat(f17 / 'datasplits.mat', val3=bad)
    with pytest.raises(ValueError) as e:
        Flowers17(str(f17), split='val', split_id=3)
    proc = run_tool(
        [ROOT / 'tools/dataset_converters/flowers17.py', 'verify', f17],
        cwd=ROOT,
        check=False)
    assert proc.returncode == 1
    assert f'  - {e.value}' in proc.stdout.splitlines()
    assert '1 problem(s)' in proc.stdout


def test_train_refuses_before_the_first_iteration(tmp_path):
    """The real entry point: tools/train.py on a split file with a test
    image in train exits with the one-line error; no checkpoint."""
    root = make_flowers17(tmp_path / 'f17', per_class=3, size=16)
    mat = _mat(root / 'datasplits.mat')
    leak = mat['tst1'].ravel()[0]
    mat['trn1'] = _row(list(mat['trn1'].ravel()) + [leak])
    scipy.io.savemat(root / 'datasplits.mat', mat)
    work = tmp_path / 'work'
    options = [
        f'{k}.dataset.data_root={root}'
        for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]
    proc = run_tool([
        ROOT / 'tools/train.py', ROOT / 'configs/flowers' /
        'resnet18_1xb8-scratch_demo-flowers17-64px.py', '--work-dir', work,
        '--cfg-options', *options
    ],
                    cwd=tmp_path,
                    check=False,
                    timeout=300)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert (f"datasplits.mat in {root} split 1: 1 images are in both test "
            f"and train (keys 'tst1', 'trn1'), first {leak}") in out, out
    assert not list(work.rglob('*.pth'))
    assert 'Epoch(train)' not in out


def test_flowers102_refuses_each_violation(f102, edit_mat):
    labels = edit_mat(f102 / 'imagelabels.mat')['labels'].ravel()
    sets = edit_mat(f102 / 'setid.mat')
    trn, val, tst = (
        sets[k].ravel().astype(int) for k in ('trnid', 'valid', 'tstid'))
    no_class_5 = [
        i for i in range(1, labels.size + 1)
        if labels[i - 1] != 5 and i not in trn and i not in val
    ]
    cases = [
        ('imagelabels.mat', dict(labels=_row(list(labels[:-1]) + [103])),
         r"imagelabels.mat in .* key 'labels' has labels outside 1\.\.102: "
         r'\[103\]'),
        ('imagelabels.mat', dict(labels=_row(list(labels[:-1]) + [2.5])),
         r"key 'labels' holds non-integer values, first \[2.5\]"),
        ('imagelabels.mat',
         dict(labels=_row(np.where(labels == 7, 8, labels))),
         r"key 'labels' has no image of 1 of 102 classes, first class 6 "
         r'\(moon orchid\)'),
        ('setid.mat', dict(valid=_row(list(val) + [val[2]])),
         rf"setid.mat in .* key 'valid' lists 1 image ids more than once, "
         rf'first {val[2]}'),
        ('setid.mat', dict(tstid=_row(list(tst) + [trn[4]])),
         rf"1 images are in both train and test \(keys 'trnid', 'tstid'\), "
         rf'first {trn[4]}'),
        ('setid.mat', dict(tstid=_row(no_class_5)),
         r"key 'tstid' has no image of 1 of 102 classes, first class 4 "
         r'\(english marigold\)'),
        ('setid.mat', dict(trnid=_row(trn)[:, :, None]),
         r"key 'trnid' has shape \(1, 102, 1\)"),
    ]
    for fname, change, message in cases:
        edit_mat(f102 / fname, **change)
        with pytest.raises(ValueError) as e:
            Flowers102(str(f102), split='val')
        assert re.search(message, str(e.value)), str(e.value)
        assert str(f102) in str(e.value) and '\n' not in str(e.value)
        edit_mat(
            f102 / fname,
            **(sets if fname == 'setid.mat' else dict(labels=_row(labels))))
    assert len(Flowers102(str(f102), split='val')) == 102


def test_flowers102_verify_uses_the_same_checks(f102, edit_mat):
    sets = edit_mat(f102 / 'setid.mat')
    trn = sets['trnid'].ravel()
    edit_mat(
        f102 / 'setid.mat', valid=_row(list(sets['valid'].ravel()) + [trn[0]]))
    with pytest.raises(ValueError) as e:
        Flowers102(str(f102), split='test')
    proc = run_tool(
        [ROOT / 'tools/dataset_converters/flowers102.py', 'verify', f102],
        cwd=ROOT,
        check=False)
    assert proc.returncode == 1
    assert f'  - {e.value}' in proc.stdout.splitlines()


@pytest.fixture
def iu(tmp_path):
    root = make_iu_xray(tmp_path / 'iu', n_train=4, n_val=2, n_test=2, size=16)
    ann = json.loads((root / 'annotation.json').read_text())
    return root, ann


def _write(root, ann):
    (root / 'annotation.json').write_text(json.dumps(ann))


def test_report_null_named_before_the_tokenizer_reads_it(iu):
    root, ann = iu
    sid = ann['train'][2]['id']
    ann['train'][2]['report'] = None
    _write(root, ann)
    for split in ('train', 'test'):  # the vocabulary reads train reports
        with pytest.raises(AnnotationError) as e:
            IUXray(str(root), split=split, pipeline=LOAD_PACK)
        assert str(e.value) == (
            f"IUXray: {root / 'annotation.json'} split 'train' entry "
            f"'{sid}' has report null (or none); fix or remove the entry")


@pytest.mark.parametrize('edit, message', [
    (lambda a: a.update(train=[]),
     r"has an empty split 'train'; the vocabulary is built from the train"),
    (lambda a: a.pop('train'), r"has no split 'train'"),
    (lambda a: a['val'][1].update(image_path=['only_one.png']),
     r"split 'val' entry 'CXR6_IM-1006' has 1 image path\(s\), 2 needed"),
    (lambda a: a['val'][0].update(image_path='CXR5_IM-1005/0.png'),
     r"entry 'CXR5_IM-1005' has image_path that is not a list"),
    (lambda a: a['test'].append(dict(a['train'][0])),
     r"split 'test' entry 'CXR1_IM-1001' is also entry 0 of split 'train'"),
    (lambda a: a['test'].__setitem__(0, 'CXR7'),
     r"split 'test' entry '#0' is a JSON str, not an object"),
    (lambda a: a.update(val={}), r"split 'val' is a JSON dict"),
    (lambda a: a['val'][0].update(report=['x']),
     r"entry 'CXR5_IM-1005' has a report of JSON type list, not text"),
])
def test_annotation_entry_problems(iu, edit, message):
    root, ann = iu
    edit(ann)
    _write(root, ann)
    with pytest.raises(
            AnnotationError, match=rf'^IUXray: .*annotation.json .*{message}'):
        IUXray(str(root), split='val', pipeline=LOAD_PACK)


def test_unreadable_annotation_files(iu):
    root, ann = iu
    path = root / 'annotation.json'
    path.write_text(json.dumps(ann)[:-40])
    with pytest.raises(
            AnnotationError,
            match=rf'^IUXray: {path} is not readable JSON '
            r'\(.*line 1 column \d+'):
        IUXray(str(root), split='train', pipeline=LOAD_PACK)
    path.write_bytes(b'{"train": ["\xff"]}')
    with pytest.raises(AnnotationError, match='is not readable JSON'):
        IUXray(str(root), split='train', pipeline=LOAD_PACK)
    path.write_text('[]')
    with pytest.raises(AnnotationError, match='holds a JSON list'):
        IUXray(str(root), split='train', pipeline=LOAD_PACK)
    path.unlink()
    with pytest.raises(
            FileNotFoundError,
            match='annotation.json not found;'
            ' expected layout: <data_root>/annotation.json'):
        IUXray(str(root), split='train', pipeline=LOAD_PACK)


def test_empty_split_and_all_images_missing(iu):
    root, ann = iu
    ann['test'] = []
    _write(root, ann)
    with pytest.raises(AnnotationError, match="split 'test' is empty"):
        IUXray(str(root), split='test', pipeline=LOAD_PACK)
    # a given vocabulary needs no train split
    del ann['train']
    ann['test'], ann['val'] = ann['val'], []
    _write(root, ann)
    ds = IUXray(
        str(root),
        split='test',
        pipeline=LOAD_PACK,
        tokenizer=dict(type='R2GenTokenizer', vocab=['a', '<unk>']))
    assert len(ds) == 2
    shutil.rmtree(root / 'images')
    with pytest.raises(
            FileNotFoundError,
            match=r"images of all 2 test studies .* missing"):
        IUXray(
            str(root),
            split='test',
            pipeline=LOAD_PACK,
            tokenizer=dict(type='R2GenTokenizer', vocab=['a', '<unk>']))


def test_mimic_checked_the_same_way(tmp_path):
    root = make_mimic_cxr(tmp_path, n_train=3, n_val=1, n_test=1, size=16)
    ann = json.loads((root / 'annotation.json').read_text())
    sid = ann['val'][0]['id']
    ann['val'][0]['report'] = ''
    _write(root, ann)
    with pytest.raises(
            AnnotationError,
            match=f"^MIMICCXR: .* split 'val' entry '{sid}' has "
            'an empty report'):
        MIMICCXR(str(root), split='train', pipeline=LOAD_PACK)
