# Copyright (c) mmext contributors. All rights reserved.
"""mmext.datasets.downloaders.image_urls at the edges: a server dribbling
its headers, a name lookup that hangs, duplicate URLs, URLs with spaces,
the decode budget shared by the workers, and damaged input files (TSV not
UTF-8, a malformed log line). Servers run on 127.0.0.1 inside the test."""
import contextlib
import os
import socket
import threading
import time

import pytest
from PIL import Image

from mmext.datasets.conceptual_captions import read_cc_tsv
from mmext.datasets.downloaders import image_urls, limits
from mmext.datasets.downloaders.image_urls import download_images, fetch_image
from mmext.testing.multimodal import local_image_server
from mmext.utils.fileio import InputFileError

FETCH = dict(timeout=2.0, retries=0, backoff=0.0, size=16)
FAST = dict(FETCH, progress=False)


@contextlib.contextmanager
def dribbling_server(delay=0.1):
    """Answers ``200 OK`` and then one header byte every ``delay`` seconds,
    for ever (until the client hangs up)."""
    listener = socket.create_server(('127.0.0.1', 0))
    listener.settimeout(0.05)
    stop, hits = threading.Event(), []

    def dribble(conn):
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b'HTTP/1.1 200 OK\r\nX-Slow: ')
                while not stop.wait(delay):
                    conn.sendall(b'a')
            except OSError:
                pass  # the client gave up

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            hits.append(time.monotonic())
            threading.Thread(target=dribble, args=(conn, ), daemon=True) \
                .start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    try:
        yield f'http://127.0.0.1:{port}', hits
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_header_dribbling_server_times_out_at_the_deadline(tmp_path):
    with dribbling_server() as (base, hits):
        t0 = time.monotonic()
        status, detail = fetch_image(
            f'{base}/x.png', str(tmp_path / 'x.jpg'), timeout=1.0, retries=1)
        elapsed = time.monotonic() - t0
    assert status == 'timeout' and 'within 1.0 s' in detail
    assert len(hits) == 2  # two attempts, 1 s each, 1 s backoff between
    assert 3.0 <= elapsed < 4.0, elapsed


def test_hanging_name_lookup_times_out_at_the_deadline(tmp_path, monkeypatch):
    real = socket.getaddrinfo

    def slow_lookup(host, *args, **kwargs):
        if host == 'slow-dns.example':
            time.sleep(3)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, 'getaddrinfo', slow_lookup)
    t0 = time.monotonic()
    status, _ = fetch_image(
        'http://slow-dns.example/x.png',
        str(tmp_path / 'x.jpg'),
        timeout=0.5,
        retries=0)
    assert status == 'timeout'
    assert time.monotonic() - t0 < 1.5


def _write_tsv(path, urls):
    path.write_text(''.join(f'caption {i}\t{u}\n'
                            for i, u in enumerate(urls, 1)))
    return path


@pytest.mark.parametrize('run', range(3))  # it crashed 3 of 3 runs
def test_duplicate_urls_fetched_once_and_mapped_to_every_line(tmp_path, run):
    with local_image_server() as server:
        dup = server.url('/img/7.png')
        urls = [
            dup,
            server.url('/img/8.png'), dup, dup,
            server.url('/missing/9')
        ]
        tsv = _write_tsv(tmp_path / 'c.tsv', urls)
        log = str(tmp_path / 'c.downloads.csv')
        counts = download_images(
            read_cc_tsv(tsv), str(tmp_path), log, workers=4, **FAST)
        assert server.hits['/img/7.png'] == 1
    rows = image_urls.read_download_log(log)
    assert sorted(rows) == [1, 2, 3, 4, 5]
    assert [rows[i].status for i in (1, 3, 4)] == ['saved'] * 3
    assert {rows[i].file
            for i in (1, 3, 4)
            } == {os.path.join('images', image_urls.image_file_name(dup))}
    assert [rows[i].caption
            for i in (1, 3, 4)] == ['caption 1', 'caption 3', 'caption 4']
    assert counts['saved'] == 4
    assert not [f for f in os.listdir(tmp_path / 'images') if 'part' in f]


def test_concurrent_saves_to_one_path_use_unique_temporary_names(tmp_path):
    target = str(tmp_path / 'same.jpg')
    with local_image_server() as server:
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(
                fetch_image(server.url('/img/3.png'), target, **FETCH)))
            for _ in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [('saved', '')] * 6
    assert os.listdir(tmp_path) == ['same.jpg']


def test_urls_with_spaces_and_invalid_urls(tmp_path):
    assert image_urls.normalize_url('http://h/a b/ü.png?q=x y') == \
        'http://h/a%20b/%C3%BC.png?q=x%20y'
    assert image_urls.normalize_url('http://bücher.example/x') == \
        'http://xn--bcher-kva.example/x'
    for url in ('http://exa mple.com/x.png', 'http://127.0.0.1:99999/x',
                'http://[::1/x', 'http:///x', 'mailto:a@b', 'http://h/\x01'):
        with pytest.raises(ValueError):
            image_urls.normalize_url(url)
    with local_image_server() as server:
        spaced = server.url('/img/a b 5.png')
        urls = [spaced, 'http://exa mple.com/x.png', 'http://[::1/x']
        tsv = _write_tsv(tmp_path / 'c.tsv', urls)
        log = str(tmp_path / 'c.downloads.csv')
        download_images(read_cc_tsv(tsv), str(tmp_path), log, **FAST)
        rows = image_urls.read_download_log(log)
        assert [rows[i].status
                for i in (1, 2, 3)] == ['saved', 'invalid_url', 'invalid_url']
        assert server.hits == {'/img/a b 5.png': 1}  # sent as a%20b%205
        # invalid URLs are final: a resume skips them
        counts = download_images(read_cc_tsv(tsv), str(tmp_path), log, **FAST)
        assert counts['skipped'] == 3


class _RecordingBudget(limits.DecodeBudget):
    made = []

    def __init__(self, max_bytes):
        super().__init__(max_bytes)
        self.made.append(self)


@pytest.mark.parametrize('images_in_budget', [1, 2, 6])
def test_decode_budget_bounds_all_workers(tmp_path, monkeypatch,
                                          images_in_budget):
    side = 64
    cost = side * side * limits.BYTES_PER_PIXEL
    real_convert = Image.Image.convert

    def slow_convert(self, *args, **kwargs):
        time.sleep(0.3)  # decodes overlap unless the budget stops them
        return real_convert(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, 'convert', slow_convert)
    monkeypatch.setattr(image_urls, 'DecodeBudget', _RecordingBudget)
    _RecordingBudget.made.clear()
    with local_image_server(size=side) as server:
        urls = [server.url(f'/img/{n}.png') for n in range(6)]
        tsv = _write_tsv(tmp_path / 'c.tsv', urls)
        counts = download_images(
            read_cc_tsv(tsv),
            str(tmp_path),
            str(tmp_path / 'log.csv'),
            workers=6,
            decode_budget=cost * images_in_budget,
            max_pixels=side * side,
            **FAST)
    assert counts['saved'] == 6
    budget, = _RecordingBudget.made
    # never exceeded, and reached: without it the workers do overlap
    assert budget.peak <= cost * images_in_budget
    assert budget.peak >= cost * min(images_in_budget, 2)
    assert budget.used == 0


def test_budget_smaller_than_one_capped_image_is_refused(tmp_path):
    with pytest.raises(ValueError, match='raise the budget'):
        download_images([(1, 'c', 'http://h/x')],
                        str(tmp_path),
                        str(tmp_path / 'log.csv'),
                        decode_budget=1 << 20,
                        max_pixels=1 << 20,
                        progress=False)


@pytest.mark.parametrize('line, cause', [
    ('x,saved,,images/a.jpg,http://h/a,cap', "'line' is 'x'"),
    ('2,gone,,,http://h/a,cap', "unknown status 'gone'"),
    ('2,saved,,http://h/a,cap', '5 columns, expected 6'),
    ('1,saved,,images/a.jpg,http://h/a,cap', 'TSV line 1 listed twice'),
])
def test_malformed_log_line_names_log_and_line(tmp_path, line, cause):
    log = tmp_path / 'c.downloads.csv'
    log.write_text('line,status,detail,file,url,caption\n'
                   '1,saved,,images/a.jpg,http://h/a,cap\n' + line + '\n')
    with pytest.raises(InputFileError) as e:
        image_urls.read_download_log(str(log))
    msg = str(e.value)
    assert f'download log {log}, line 3: {cause}' in msg and '\n' not in msg


def test_log_not_utf8_names_log(tmp_path):
    log = tmp_path / 'c.downloads.csv'
    log.write_bytes(b'line,status,detail,file,url,caption\n'
                    b'1,saved,,images/a.jpg,http://h/a,caf\xe9\n')
    with pytest.raises(InputFileError, match=f'download log {log}, line'):
        image_urls.read_download_log(str(log))


def test_log_with_a_huge_caption_reads_back(tmp_path):
    log = str(tmp_path / 'c.downloads.csv')
    rec = image_urls.DownloadRecord(1, 'saved', '', 'images/a.jpg',
                                    'http://h/a', 'x' * 200_000)
    image_urls.write_download_log(log, {1: rec})
    back = image_urls.read_download_log(log)[1]
    assert back.caption == 'x' * 65536 and back.url == 'http://h/a'
