# Copyright (c) mmext contributors. All rights reserved.
"""tools/dataset_converters/flowers{17,102}.py: verify on good and broken
generated folders; download offline, and from hand-fetched archives."""
import hashlib
import importlib.util
import os
import tarfile
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from mmext.testing import make_flowers17, make_flowers102

TOOLS = Path(__file__).resolve().parents[2] / 'tools' / 'dataset_converters'


def _load(name):
    spec = importlib.util.spec_from_file_location(f'_conv_{name}',
                                                  TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


F17 = _load('flowers17')
F102 = _load('flowers102')
UTILS = _load('flowers_utils')


@pytest.fixture
def f17(tmp_path):
    return make_flowers17(tmp_path / 'f17', per_class=3, size=16)


def test_verify_flowers17_ok(f17, capsys):
    assert F17.main(['verify', str(f17)]) == 0
    out = capsys.readouterr().out
    assert '51 images in jpg/ (the real set has 1360)' in out
    assert 'split 2: train 17 (17 classes), val 17 (17 classes), test 17' \
        in out
    assert out.rstrip().endswith('OK')


def test_verify_flowers17_broken(f17, capsys):
    mat = {k: v for k, v in scipy.io.loadmat(f17 / 'datasplits.mat').items()
           if not k.startswith('__')}
    # a train image also in test: a leak inside the split file
    mat['tst1'] = np.concatenate([mat['tst1'], mat['trn1'][:, :1]], axis=1)
    scipy.io.savemat(f17 / 'datasplits.mat', mat)
    assert F17.main(['verify', str(f17)]) == 1
    out = capsys.readouterr().out
    assert 'split 1: 1 images are in both test and train' in out
    assert '1 problem(s)' in out

    os.remove(f17 / 'jpg' / 'image_0004.jpg')
    assert F17.main(['verify', str(f17)]) == 1
    out = capsys.readouterr().out
    assert '50 images in jpg/' in out
    # image 4 is in one part of each of the 3 split ids; identical loader
    # messages are one problem line naming every split they hit
    lines = [x for x in out.splitlines() if 'jpg/image_0004.jpg' in x]
    assert sum(x.split(':')[0].count('split ') for x in lines) == 3
    assert all('1 of ' in x and 'are missing' in x for x in lines)

    del mat['val3']
    scipy.io.savemat(f17 / 'datasplits.mat', mat)
    assert F17.main(['verify', str(f17)]) == 1
    out = capsys.readouterr().out
    assert "no key 'val3' (expected trn1..3, val1..3, tst1..3)" in out


def test_verify_missing_folder(tmp_path, capsys):
    assert F17.main(['verify', str(tmp_path / 'nope')]) == 1
    assert 'is not a folder' in capsys.readouterr().out


def test_verify_flowers102(tmp_path, capsys):
    root = tmp_path / 'f102'
    make_flowers102(root, per_class=3, size=16)
    assert F102.main(['verify', str(root)]) == 0
    out = capsys.readouterr().out
    assert 'train 102 (102 classes), val 102 (102 classes), test 102' in out
    assert 'exclude_flowers17.txt: absent' in out
    os.remove(root / 'setid.mat')
    assert F102.main(['verify', str(root)]) == 1
    assert 'no setid.mat' in capsys.readouterr().out


def test_download_offline_fails_fast(tmp_path, capsys):
    # nothing listens on the loopback discard port: refused at once
    start = time.time()
    code = F102.main(['download', '--out', str(tmp_path / 'out'),
                      '--base-url', 'http://127.0.0.1:9/', '--timeout', '2'])
    assert code == 2 and time.time() - start < 30
    err = capsys.readouterr().err
    assert 'cannot fetch http://127.0.0.1:9/102flowers.tgz' in err
    assert 'offline' in err and '--archive-dir' in err
    assert not list((tmp_path / 'out').glob('*.part'))


def test_download_timeout_is_offline(tmp_path, monkeypatch, capsys):
    def silent(url, timeout):
        assert timeout == 3
        raise urllib.error.URLError(TimeoutError('timed out'))

    monkeypatch.setattr(UTILS.urllib.request, 'urlopen', silent)
    with pytest.raises(UTILS.FetchError, match='timed out.*offline'):
        UTILS.fetch('https://example.org/x.tgz', str(tmp_path / 'x.tgz'),
                    '0' * 32, timeout=3)


def _md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def test_download_from_archive_dir(tmp_path, monkeypatch, capsys):
    """The official file names, md5-checked, extracted and verified."""
    src = make_flowers17(tmp_path / 'src', per_class=3, size=16)
    archives = tmp_path / 'archives'
    archives.mkdir()
    with tarfile.open(archives / '17flowers.tgz', 'w:gz') as tar:
        tar.add(src / 'jpg', arcname='jpg')
    (archives / 'datasplits.mat').write_bytes(
        (src / 'datasplits.mat').read_bytes())
    files = [('17flowers.tgz', _md5(archives / '17flowers.tgz')),
             ('datasplits.mat', _md5(archives / 'datasplits.mat'))]
    monkeypatch.setattr(F17, 'FILES', files)
    out = tmp_path / 'data' / 'flowers17'
    assert F17.main(['download', '--out', str(out), '--archive-dir',
                     str(archives)]) == 0
    assert len(list((out / 'jpg').glob('image_*.jpg'))) == 51
    assert capsys.readouterr().out.rstrip().endswith('OK')
    # a changed file fails its checksum
    monkeypatch.setattr(F17, 'FILES', [('datasplits.mat', '0' * 32)])
    assert F17.main(['download', '--out', str(out), '--archive-dir',
                     str(archives)]) == 2
    assert 'md5' in capsys.readouterr().err


def test_real_checksums_listed():
    assert dict(F17.FILES) == {
        '17flowers.tgz': 'b59a65d8d1a99cd66944d474e1289eab',
        'datasplits.mat': '4828cddfd0d803c5abbdebcb1e148a1e'}
    assert set(dict(F102.FILES)) == {'102flowers.tgz', 'imagelabels.mat',
                                     'setid.mat'}
