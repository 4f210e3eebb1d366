# Copyright (c) mmext contributors. All rights reserved.
"""mmext.datasets.downloaders (the Flowers releases behind
tools/dataset_converters/flowers{17,102}.py): verify on good and broken
generated folders; download offline, and from hand-fetched archives."""
import dataclasses
import hashlib
import os
import socket
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from mmext.datasets.downloaders import (FLOWERS17, FLOWERS102, FetchError,
                                        fetch_file, release_parser,
                                        run_release)
from mmext.testing import make_flowers17, make_flowers102
from tests.conftest import ROOT, run_tool

TOOLS = ROOT / 'tools' / 'dataset_converters'


def _cli(release, *argv):
    """What ``tools/dataset_converters/flowers{17,102}.py ARGV`` runs."""
    args = release_parser(release, 'test').parse_args(list(map(str, argv)))
    return run_release(release, args)


@pytest.fixture
def f17(tmp_path):
    return make_flowers17(tmp_path / 'f17', per_class=3, size=16)


def test_verify_flowers17_ok(f17, capsys):
    assert _cli(FLOWERS17, 'verify', f17) == 0
    out = capsys.readouterr().out
    assert '51 images in jpg/ (the real set has 1360)' in out
    assert 'split 2: train 17 (17 classes), val 17 (17 classes), test 17' \
        in out
    assert out.rstrip().endswith('OK')


def test_verify_flowers17_broken(f17, capsys):
    mat = {
        k: v
        for k, v in scipy.io.loadmat(f17 / 'datasplits.mat').items()
        if not k.startswith('__')
    }
    # a train image also in test: a leak inside the split file
    mat['tst1'] = np.concatenate([mat['tst1'], mat['trn1'][:, :1]], axis=1)
    scipy.io.savemat(f17 / 'datasplits.mat', mat)
    assert _cli(FLOWERS17, 'verify', f17) == 1
    out = capsys.readouterr().out
    assert 'split 1: 1 images are in both test and train' in out
    assert '1 problem(s)' in out

    os.remove(f17 / 'jpg' / 'image_0004.jpg')
    assert _cli(FLOWERS17, 'verify', f17) == 1
    out = capsys.readouterr().out
    assert '50 images in jpg/' in out
    # image 4 is in one part of each of the 3 split ids; identical loader
    # messages are one problem line naming every split they hit
    lines = [x for x in out.splitlines() if 'jpg/image_0004.jpg' in x]
    assert sum(x.split(':')[0].count('split ') for x in lines) == 3
    assert all('1 of ' in x and 'are missing' in x for x in lines)

    del mat['val3']
    scipy.io.savemat(f17 / 'datasplits.mat', mat)
    assert _cli(FLOWERS17, 'verify', f17) == 1
    out = capsys.readouterr().out
    assert "no key 'val3' (expected trn1..3, val1..3, tst1..3)" in out


def test_verify_missing_folder(tmp_path, capsys):
    assert _cli(FLOWERS17, 'verify', tmp_path / 'nope') == 1
    assert 'is not a folder' in capsys.readouterr().out


def test_verify_flowers102(tmp_path, capsys):
    root = tmp_path / 'f102'
    make_flowers102(root, per_class=3, size=16)
    assert _cli(FLOWERS102, 'verify', root) == 0
    out = capsys.readouterr().out
    assert 'train 102 (102 classes), val 102 (102 classes), test 102' in out
    assert 'exclude_flowers17.txt: absent' in out
    os.remove(root / 'setid.mat')
    assert _cli(FLOWERS102, 'verify', root) == 1
    assert 'no setid.mat' in capsys.readouterr().out


def test_tools_are_the_package_command_lines(f17):
    """The thin CLIs: same verify output as the package, and the help
    lists every official file with its md5."""
    proc = run_tool([TOOLS / 'flowers17.py', 'verify', f17], cwd=ROOT)
    assert '51 images in jpg/ (the real set has 1360)' in proc.stdout
    assert proc.stdout.rstrip().endswith('OK')
    proc = run_tool([TOOLS / 'flowers102.py', '--help'], cwd=ROOT)
    for name, md5 in FLOWERS102.files:
        assert f'{FLOWERS102.base_url}{name} (md5 {md5})' in proc.stdout


def test_download_offline_fails_fast(tmp_path, monkeypatch, capsys):
    # nothing listens on the loopback discard port: refused at once
    for var in ('no_proxy', 'NO_PROXY'):  # a CI proxy must not answer
        monkeypatch.setenv(var, '127.0.0.1')
    start = time.time()
    code = _cli(FLOWERS102, 'download', '--out', tmp_path / 'out',
                '--base-url', 'http://127.0.0.1:9/', '--timeout', '2')
    assert code == 2 and time.time() - start < 30
    err = capsys.readouterr().err
    assert 'cannot fetch http://127.0.0.1:9/102flowers.tgz' in err
    assert 'offline' in err and '--archive-dir' in err
    assert not list((tmp_path / 'out').glob('*.part'))
    assert not list((tmp_path / 'out').iterdir())  # no temporary file left


def test_download_timeout_is_offline(tmp_path, monkeypatch, capsys):
    """mmpretrain's download opens the URL without a timeout; ours reaches
    it as the socket default, restored afterwards."""
    before = socket.getdefaulttimeout()

    def silent(request, *args, **kwargs):
        assert socket.getdefaulttimeout() == 3
        raise urllib.error.URLError(TimeoutError('timed out'))

    monkeypatch.setattr(urllib.request, 'urlopen', silent)
    with pytest.raises(FetchError, match='timed out.*offline'):
        fetch_file(
            'https://example.org/x.tgz',
            str(tmp_path / 'x.tgz'),
            '0' * 32,
            timeout=3)
    assert socket.getdefaulttimeout() == before
    assert not list(tmp_path.iterdir())


def _md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def test_download_from_archive_dir(tmp_path, capsys):
    """The official file names, md5-checked, extracted and verified."""
    src = make_flowers17(tmp_path / 'src', per_class=3, size=16)
    archives = tmp_path / 'archives'
    archives.mkdir()
    with tarfile.open(archives / '17flowers.tgz', 'w:gz') as tar:
        tar.add(src / 'jpg', arcname='jpg')
    (archives / 'datasplits.mat').write_bytes(
        (src / 'datasplits.mat').read_bytes())
    files = (('17flowers.tgz', _md5(archives / '17flowers.tgz')),
             ('datasplits.mat', _md5(archives / 'datasplits.mat')))
    release = dataclasses.replace(FLOWERS17, files=files)
    out = tmp_path / 'data' / 'flowers17'
    assert _cli(release, 'download', '--out', out, '--archive-dir',
                archives) == 0
    assert len(list((out / 'jpg').glob('image_*.jpg'))) == 51
    assert capsys.readouterr().out.rstrip().endswith('OK')
    # a changed file fails its checksum
    release = dataclasses.replace(
        FLOWERS17, files=(('datasplits.mat', '0' * 32), ))
    assert _cli(release, 'download', '--out', out, '--archive-dir',
                archives) == 2
    err = capsys.readouterr().err
    assert 'md5' in err
    assert f'{archives / "datasplits.mat"}: md5 {files[1][1]} != ' \
           f'expected {"0" * 32}' in err


def test_real_checksums_listed():
    assert dict(FLOWERS17.files) == {
        '17flowers.tgz': 'b59a65d8d1a99cd66944d474e1289eab',
        'datasplits.mat': '4828cddfd0d803c5abbdebcb1e148a1e'
    }
    assert set(dict(FLOWERS102.files)) == {
        '102flowers.tgz', 'imagelabels.mat', 'setid.mat'
    }
