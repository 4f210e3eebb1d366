# Copyright (c) mmext contributors. All rights reserved.
"""Conceptual Captions: the downloader against a local HTTP server (images,
404s, slow, trickling, corrupt and flaky answers, hostile URLs) and the
data set over what it wrote."""
import csv
import io
import os
import time

import pytest
from PIL import Image

from mmext.datasets import ConceptualCaptions, RecordError
from mmext.datasets.conceptual_captions import (download_conceptual_captions,
                                                download_log_path,
                                                summarize_download,
                                                thesis_file_name)
from mmext.datasets.downloaders import fetch_image, image_file_name
from mmext.testing import make_conceptual_captions
from mmext.testing.multimodal import local_image_server

FAST = dict(
    timeout=0.4, retries=1, backoff=0.0, size=40, progress=False, workers=4)


def _expected(server, n, size=40):
    """The bytes the downloader must write for image ``n``."""
    img = Image.open(io.BytesIO(server.image_bytes(n))).convert('RGB')
    buf = io.BytesIO()
    img.resize((size, size), Image.Resampling.LANCZOS).save(
        buf, format='JPEG', quality=95)
    return buf.getvalue()


def _urls(server):
    """(URL, expected status) of every case; case n serves image n."""
    u = server.url
    return [
        (u('/img/1.png'), 'saved'),
        (u('/a/2/image.jpg'), 'saved'),  # same basename, other image
        (u('/b/3/image.jpg'), 'saved'),
        (u('/img/4.png?w=640&h=480'), 'saved'),
        (u('/img/5.png/../../../../etc/passwd'), 'saved'),
        (u('/img/%2e%2e%2f%2e%2e%2f6.png'), 'saved'),
        (u('/img/ünïcödé 7.png'), 'saved'),
        (u('/flaky/8.png'), 'saved'),  # 503, then the image (retry)
        (u('/missing/9.png'), 'http_error'),
        (u('/slow/10.png'), 'timeout'),
        (u('/trickle/11.png'), 'timeout'),  # bytes keep coming: too slow
        (u('/corrupt/12.jpg'), 'not_image'),
        (u('/html/13.jpg'), 'not_image'),
        (u('/to-file'), 'http_error'),  # redirect to file:// refused
        ('file:///etc/passwd', 'invalid_url'),
        ('ftp://127.0.0.1/x.jpg', 'invalid_url'),
        ('http://127.0.0.1:9/refused.jpg', 'network_error'),
    ]


def _write_tsv(path, urls):
    with open(path, 'w', encoding='utf-8') as f:
        for i, url in enumerate(urls):
            f.write(f'a caption number {i}\t{url}\n')


def _log(path):
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.DictReader(f))


def test_download_accounts_for_every_url_and_resumes(tmp_path):
    with local_image_server(slow=1.5) as server:
        cases = _urls(server)
        tsv = tmp_path / 'captions.tsv'
        _write_tsv(tsv, [u for u, _ in cases])
        t0 = time.monotonic()
        counts, log = download_conceptual_captions(
            str(tsv), str(tmp_path), **FAST)
        assert time.monotonic() - t0 < 20
        rows = _log(log)
        assert [r['status'] for r in rows] == [s for _, s in cases]
        assert [int(r['line']) for r in rows] == list(range(1, 18))
        assert counts['saved'] == 8 and counts['timeout'] == 2
        assert {r['detail'] for r in rows if r['status'] == 'http_error'} \
            == {'404', '302'}
        # file names: the URL's SHA-1, flat in images/, nothing else written
        files = sorted(os.listdir(tmp_path / 'images'))
        assert files == sorted(
            image_file_name(u) for u, s in cases if s == 'saved')
        assert sorted(os.listdir(tmp_path)) == [
            'captions.downloads.csv', 'captions.tsv', 'images'
        ]
        # each caption keeps its own image, resized with LANCZOS, JPEG q95
        for n, ((url, status), row) in enumerate(zip(cases, rows), 1):
            if status == 'saved':  # case n serves image n
                data = (tmp_path / row['file']).read_bytes()
                assert data == _expected(server, n), url
        hits = dict(server.hits)
        assert hits['/flaky/8.png'] == 2 and hits['/missing/9.png'] == 1

        # resume: saved and final failures skipped; timeouts retried
        counts2, _ = download_conceptual_captions(
            str(tsv), str(tmp_path), **FAST)
        assert counts2['skipped'] == 14  # all but 2 timeouts, 1 refused
        assert server.hits['/missing/9.png'] == 1
        assert server.hits['/img/1.png'] == hits['/img/1.png']
        assert server.hits['/slow/10.png'] > hits['/slow/10.png']
        counts3, _ = download_conceptual_captions(
            str(tsv), str(tmp_path), retry_failed=True, **FAST)
        assert server.hits['/missing/9.png'] == 2
    assert summarize_download(str(tsv), str(tmp_path)) == {
        'saved': 8,
        'http_error': 2,
        'timeout': 2,
        'not_image': 2,
        'invalid_url': 2,
        'network_error': 1
    }


def test_fetch_image_retries_and_limits(tmp_path):
    with local_image_server() as server:
        target = str(tmp_path / 'x.jpg')
        assert fetch_image(
            server.url('/flaky/3.png'), target, retries=0,
            backoff=0) == ('http_error', '503')
        assert fetch_image(
            server.url('/flaky/3.png'), target, retries=0,
            backoff=0) == ('saved', '')
        status, detail = fetch_image(
            server.url('/img/4.png'), target, max_pixels=100)
        assert status == 'not_image' and '48x48' in detail
        status, detail = fetch_image(
            server.url('/img/4.png'), target, max_bytes=100)
        assert (status, detail) == ('not_image', 'over 100 bytes')
    assert not [f for f in os.listdir(tmp_path) if f.endswith('.part')]


def test_dataset_reads_downloaded_images_and_reports_missing(tmp_path):
    root = make_conceptual_captions(tmp_path / 'cc', num=8, missing=2)
    ds = ConceptualCaptions(
        str(root),
        ann_file='captions.tsv',
        pipeline=[dict(type='LoadImageFromFile')])
    assert len(ds) == 6 and ds.num_missing == 2
    assert [i for i, _ in ds.missing] == [7, 8]
    lines = (root / 'captions.tsv').read_text().splitlines()
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        caption, url = lines[info['id'] - 1].split('\t')
        assert info['text'] == caption
        assert info['img_path'] == str(root / 'images' / image_file_name(url))
    assert ds[0]['img'].shape == (32, 32, 3)
    with pytest.raises(FileNotFoundError, match='2 of 8 samples miss'):
        ConceptualCaptions(
            str(root), ann_file='captions.tsv', on_missing='error')
    with pytest.raises(FileNotFoundError, match='Validation_GCC-1.1.0'):
        ConceptualCaptions(str(root), split='val')


@pytest.mark.parametrize('line, cause', [
    ('only a caption', '1 tab-separated field'),
    ('a\tb\tc', '3 tab-separated field'),
    ('\thttp://x/y.jpg', 'an empty caption or URL'),
])
def test_malformed_tsv_line_names_file_and_line(tmp_path, line, cause):
    root = make_conceptual_captions(tmp_path / 'cc', num=4, missing=0)
    tsv = root / 'captions.tsv'
    lines = tsv.read_text().splitlines()
    tsv.write_text('\n'.join(lines[:2] + [line] + lines[2:]) + '\n')
    with pytest.raises(RecordError, match=f'captions.tsv:3: {cause}'):
        ConceptualCaptions(str(root), ann_file='captions.tsv')


def test_thesis_naming_refuses_ambiguous_and_unsafe_names(tmp_path):
    root = tmp_path / 'cc'
    (root / 'images').mkdir(parents=True)
    urls = [
        'http://h/a/photo.png?x=1', 'http://h/b/image.jpg',
        'http://h/c/image.jpg', 'http://h/d/..', 'http://h/e/x\\..\\y'
    ]
    _write_tsv(root / 'captions.tsv', urls)
    for url in urls:
        name = thesis_file_name(url)
        if '\\' not in name:
            Image.new('RGB', (8, 8)).save(root / 'images' / name, 'JPEG')
    assert thesis_file_name(urls[0]) == 'photo.jpg'
    assert thesis_file_name(urls[3]) == '..jpg'  # a plain (odd) name
    ds = ConceptualCaptions(
        str(root), ann_file='captions.tsv', naming='thesis')
    # photo.jpg and '..jpg' are unambiguous; the two
    # image.jpg are not; a backslash name is no plain file name
    assert [ds.get_data_info(i)['id'] for i in range(len(ds))] == [1, 4]
    assert sorted(i for i, _ in ds.missing) == [2, 3, 5]


def test_tsv_with_byte_order_mark(tmp_path):
    root = make_conceptual_captions(tmp_path / 'cc', num=3, missing=0)
    tsv = root / 'captions.tsv'
    tsv.write_bytes(b'\xef\xbb\xbf' + tsv.read_bytes())
    ds = ConceptualCaptions(str(root), ann_file='captions.tsv')
    assert len(ds) == 3 and ds.get_data_info(0)['text'][0] != '\ufeff'


def test_download_log_path_next_to_tsv(tmp_path):
    assert download_log_path('/d/Train_GCC-training.tsv', '/o') == \
        '/o/Train_GCC-training.downloads.csv'
