# Copyright (c) mmext contributors. All rights reserved.
"""mmext.datasets.downloaders.archives: md5-checked fetch over a loopback
HTTP server (mmpretrain's download underneath), and tar extraction that
refuses archives writing outside their folder."""
import functools
import hashlib
import http.server
import io
import tarfile
import threading

import pytest

from mmext.datasets.downloaders import (FetchError, download_files, fetch_file,
                                        safe_extract)


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A folder served on 127.0.0.1 for the test only; yields (dir, url)."""
    for var in ('no_proxy', 'NO_PROXY'):  # a CI proxy must not intercept
        monkeypatch.setenv(var, '127.0.0.1')
    root = tmp_path / 'www'
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05, ), daemon=True)
    thread.start()
    try:
        yield root, f'http://127.0.0.1:{server.server_address[1]}/'
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):

    def log_message(self, *args):
        pass


def _md5(data):
    return hashlib.md5(data).hexdigest()


def test_fetch_checks_md5(served, tmp_path, capsys):
    www, url = served
    data = b'datasplits' * 1000
    (www / 'a.mat').write_bytes(data)
    out = tmp_path / 'out'
    out.mkdir()
    dest = str(out / 'a.mat')
    assert fetch_file(url + 'a.mat', dest, _md5(data), timeout=5) == dest
    assert (out / 'a.mat').read_bytes() == data
    assert 'fetched, md5 ok' in capsys.readouterr().out

    # present with the right md5: kept, the server is not asked
    (www / 'a.mat').unlink()
    fetch_file(url + 'a.mat', dest, _md5(data), timeout=5)
    assert 'present, md5 ok' in capsys.readouterr().out

    # a changed file on the server: refused, naming URL and both sums
    (www / 'b.mat').write_bytes(b'changed')
    with pytest.raises(FetchError) as e:
        fetch_file(url + 'b.mat', str(out / 'b.mat'), _md5(data), timeout=5)
    assert str(e.value).startswith(
        f'{url}b.mat: md5 {_md5(b"changed")} != expected {_md5(data)}')
    assert sorted(p.name for p in out.iterdir()) == ['a.mat']  # no .part


def test_fetch_missing_on_server(served, tmp_path):
    _, url = served
    with pytest.raises(
            FetchError,
            match=r'cannot fetch .*nope\.tgz \(HTTP '
            r'404 File not found\): the file moved.*--archive-dir'):
        fetch_file(
            url + 'nope.tgz', str(tmp_path / 'nope.tgz'), '0' * 32, timeout=5)
    assert not list(tmp_path.glob('nope.tgz*'))


def _tgz(path, members):
    """Write ``path`` with ``members``: (TarInfo, bytes or None)."""
    with tarfile.open(path, 'w:gz') as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name, data=b'x'):
    return tarfile.TarInfo(name), data


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@pytest.mark.parametrize('bad, why', [
    (_file('../evil.txt'), 'its path leaves the folder'),
    (_file('jpg/../../evil.txt'), 'its path leaves the folder'),
    (_file('/tmp/mmext_evil.txt'), 'its path leaves the folder'),
    (_link('jpg/link', '../../evil.txt'), 'a link out of the folder'),
    (_link('jpg/link', '/etc/passwd'), 'a link out of the folder'),
    (_link('jpg/hard', '../evil.txt',
           tarfile.LNKTYPE), 'a link out of the folder'),
    (_link('jpg/fifo', '', tarfile.FIFOTYPE), 'a device or FIFO'),
])
def test_safe_extract_refuses_whole_archive(tmp_path, bad, why):
    archive = _tgz(tmp_path / 'x.tgz', [_file('jpg/image_0001.jpg'), bad])
    out = tmp_path / 'deep' / 'out'
    out.mkdir(parents=True)
    with pytest.raises(FetchError) as e:
        safe_extract(str(archive), str(out))
    msg = str(e.value)
    assert f'unsafe member {bad[0].name} in {archive} ({why}' in msg
    assert 'nothing extracted' in msg
    assert not list(out.iterdir())  # not even the safe member
    assert not (tmp_path / 'evil.txt').exists()
    assert not (tmp_path / 'deep' / 'evil.txt').exists()


def test_safe_extract_good_archive(tmp_path, capsys):
    archive = _tgz(tmp_path / 'x.tgz', [
        _file('jpg/image_0001.jpg', b'one'),
        _file('jpg/image_0002.jpg'),
        _link('jpg/same.jpg', 'image_0001.jpg')
    ])
    out = tmp_path / 'out'
    out.mkdir()
    safe_extract(str(archive), str(out))
    assert (out / 'jpg' / 'image_0001.jpg').read_bytes() == b'one'
    assert (out / 'jpg' / 'same.jpg').read_bytes() == b'one'
    assert f'{archive}: extracted into {out}' in capsys.readouterr().out


def test_safe_extract_not_an_archive(tmp_path):
    bad = tmp_path / 'x.tgz'
    bad.write_bytes(b'<html>not found</html>')
    with pytest.raises(
            FetchError,
            match=r'x\.tgz is not a readable tar '
            r'archive .*fetch it again'):
        safe_extract(str(bad), str(tmp_path))


def test_download_files_refuses_a_traversing_archive(served, tmp_path):
    """Fetched with the right md5 and still refused: nothing written."""
    www, url = served
    archive = _tgz(www / 'x.tgz', [_file('../evil.txt')])
    out = tmp_path / 'out'
    with pytest.raises(FetchError, match='unsafe member ../evil.txt'):
        download_files([('x.tgz', _md5(archive.read_bytes()))],
                       str(out),
                       url,
                       timeout=5)
    assert not (tmp_path / 'evil.txt').exists()
    assert [p.name for p in out.iterdir()] == ['x.tgz']
