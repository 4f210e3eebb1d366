# Copyright (c) mmext contributors. All rights reserved.
"""Generated image-text data sets in the real on-disk layouts of Hateful
Memes, MM-IMDb, UPMC Food-101 and Conceptual Captions.

No multimodal data set can be downloaded here; these writers serve the
tests and small configs. Labels are visible in both modalities (an image
hue and a text word per class), so a tiny model can learn them.
"""
import contextlib
import csv
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np

from mmext.datasets.conceptual_captions import download_log_path
from mmext.datasets.downloaders import (DownloadRecord, image_file_name,
                                        write_download_log)
from mmext.datasets.mmimdb import MMIMDB_GENRES
from mmext.datasets.upmc_food101 import FOOD101_CLASSES
from .data import class_image

__all__ = [
    'make_hateful_memes', 'make_mmimdb', 'make_upmc_food101',
    'make_conceptual_captions', 'local_image_server'
]

_WORDS = ('sunny', 'stormy', 'quiet', 'loud', 'green', 'red', 'old', 'new')
_NOUNS = ('dog', 'city', 'river', 'meme', 'kitchen', 'street', 'car')


def _sentence(rng, cue):
    words = list(rng.choice(_WORDS, 2)) + [cue] + list(rng.choice(_NOUNS, 2))
    return ' '.join(words)


def make_hateful_memes(root,
                       sizes=None,
                       dev_overlap=2,
                       test_labels=True,
                       size=32,
                       seed=0):
    """Write the Hateful Memes challenge layout.

    ``img/<id:05d>.png`` and ``train.jsonl``, ``dev_seen.jsonl``,
    ``dev_unseen.jsonl``, ``test_seen.jsonl``, ``test_unseen.jsonl``
    (``{"id": "01000", "img": "img/01000.png", "label", "text"}`` per line,
    ids as strings like the release). As in the release, the
    first ``dev_overlap`` memes of ``dev_seen`` are repeated verbatim in
    ``dev_unseen``.

    Args:
        root (str | Path): Output folder.
        sizes (dict, optional): Memes per file. Defaults to train 16, the
            others 6 each.
        dev_overlap (int): Memes shared by the two dev files.
        test_labels (bool): Write labels into the test files.
        size (int): Image side.
        seed (int): Random seed.

    Returns:
        Path: ``root``.
    """
    root = Path(root)
    (root / 'img').mkdir(parents=True, exist_ok=True)
    sizes = sizes or dict(
        train=16, dev_seen=6, dev_unseen=6, test_seen=6, test_unseen=6)
    rng = np.random.default_rng(seed)
    next_id, files = 1000, {}
    for split, n in sizes.items():
        records = []
        if split == 'dev_unseen':
            records = [
                dict(r) for r in files.get('dev_seen', [])[:dev_overlap]
            ]
        while len(records) < n:
            label = int(rng.integers(0, 2))
            class_image(label, next_id, size,
                        2).save(root / 'img' / f'{next_id:05d}.png')
            cue = 'hateful' if label else 'friendly'
            records.append(
                dict(
                    id=f'{next_id:05d}',
                    img=f'img/{next_id:05d}.png',
                    label=label,
                    text=_sentence(rng, cue)))
            next_id += 1
        files[split] = records
    for split, records in files.items():
        with open(root / f'{split}.jsonl', 'w', encoding='utf-8') as f:
            for rec in records:
                if split.startswith('test') and not test_labels:
                    rec = {k: v for k, v in rec.items() if k != 'label'}
                f.write(json.dumps(rec) + '\n')
    return root


def make_mmimdb(root, sizes=(12, 4, 4), size=32, seed=0):
    """Write the official MM-IMDb layout: ``split.json`` and
    ``dataset/<id>.json`` (``plot`` list, ``genres`` list, ``title``) with
    ``dataset/<id>.jpeg``.

    Every third movie also has the genre 'News' (outside the 23).

    Args:
        root (str | Path): Output folder.
        sizes (tuple[int]): Movies in train, dev, test.
        size (int): Poster side.
        seed (int): Random seed.

    Returns:
        Path: ``root``.
    """
    root = Path(root)
    folder = root / 'dataset'
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    split, k = {}, 0
    for name, n in zip(('train', 'dev', 'test'), sizes):
        split[name] = []
        for _ in range(n):
            movie_id = f'{100000 + k:07d}'
            labels = sorted(
                rng.choice(
                    len(MMIMDB_GENRES), int(rng.integers(1, 4)),
                    replace=False).tolist())
            genres = [MMIMDB_GENRES[i] for i in labels]
            if k % 3 == 0:
                genres.append('News')
            cue = MMIMDB_GENRES[labels[0]].lower()
            plots = [
                _sentence(rng, cue),
                _sentence(rng, cue) + ' and ' + _sentence(rng, cue)
            ]
            meta = dict(
                title=f'Movie {k}',
                plot=plots,
                genres=genres,
                imdb_id=movie_id)
            (folder / f'{movie_id}.json').write_text(json.dumps(meta))
            class_image(labels[0], k, size, len(MMIMDB_GENRES)).save(
                folder / f'{movie_id}.jpeg', quality=90)
            split[name].append(movie_id)
            k += 1
    (root / 'split.json').write_text(json.dumps(split))
    return root


def make_upmc_food101(root, num_classes=3, per_class=(4, 2), size=32, seed=0):
    """Write the UPMC Food-101 layout for the first ``num_classes``
    classes: ``images/{train,test}/<class>/<class>_<i>.jpg`` and
    ``texts/{train,test}_titles.csv`` (no header: image name, text, class;
    every text contains a comma, so it is quoted).

    Returns:
        Path: ``root``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    (root / 'texts').mkdir(parents=True, exist_ok=True)
    for s, (split, n) in enumerate(zip(('train', 'test'), per_class)):
        rows = []
        for label, cls in enumerate(FOOD101_CLASSES[:num_classes]):
            folder = root / 'images' / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                name = f'{cls}_{s * 1000 + i}.jpg'
                class_image(label, s * 1000 + i, size, num_classes).save(
                    folder / name, quality=90)
                text = f'{cls.replace("_", " ")} recipe, ' + _sentence(
                    rng, 'homemade')
                rows.append((name, text, cls))
        with open(
                root / 'texts' / f'{split}_titles.csv',
                'w',
                encoding='utf-8',
                newline='') as f:
            csv.writer(f).writerows(rows)
    return root


def make_conceptual_captions(root,
                             num=8,
                             missing=2,
                             size=32,
                             tsv='captions.tsv',
                             seed=0):
    """Write a Conceptual Captions TSV (``caption<TAB>url``), the images of
    all but the last ``missing`` URLs as ``images/<sha1 of URL>.jpg`` (what
    the downloader writes) and the download log (the missing ones as
    HTTP 404).

    Returns:
        Path: ``root``.
    """
    root = Path(root)
    (root / 'images').mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records, lines = {}, []
    for i in range(num):
        url = f'http://img{i % 3}.example.com/photos/{i}/image.jpg?w=640'
        caption = _sentence(rng, 'photo')
        lines.append(f'{caption}\t{url}\n')
        name = image_file_name(url)
        if i < num - missing:
            class_image(i % 3, i, size, 3).save(
                root / 'images' / name, quality=90)
            rec = DownloadRecord(i + 1, 'saved', '', f'images/{name}', url,
                                 caption)
        else:
            rec = DownloadRecord(i + 1, 'http_error', '404', '', url, caption)
        records[i + 1] = rec
    (root / tsv).write_text(''.join(lines), encoding='utf-8')
    write_download_log(download_log_path(tsv, str(root)), records)
    return root


class _ImageHandler(BaseHTTPRequestHandler):
    """Routes (``<n>`` picks the generated image):

    ``/img/<n>.png``, ``/<any>/<n>/image.jpg`` an image; ``/missing/...``
    404; ``/slow/<n>.png`` the image after ``slow`` seconds;
    ``/trickle/<n>.png`` the image one byte per 50 ms; ``/corrupt/...``
    200 with broken JPEG bytes; ``/html/...`` a web page;
    ``/flaky/<n>.png`` 503 on the first request, then the image;
    ``/to-file`` a redirect to ``file:///etc/passwd``.
    """

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, code, body=b'', ctype='image/png'):
        self.send_response(code)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server's name)
        server = self.server
        path = unquote(urlsplit(self.path).path)
        with server.lock:
            server.hits[path] = server.hits.get(path, 0) + 1
            hits = server.hits[path]
        digits = ''.join(c for c in path if c.isdigit())
        body = server.image_bytes(int(digits[-3:] or 0))
        kind = path.strip('/').split('/')[0]
        try:
            if kind == 'missing':
                self._send(404, b'not found', 'text/plain')
            elif kind == 'slow':
                time.sleep(server.slow)
                self._send(200, body)
            elif kind == 'trickle':
                self.send_response(200)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                for i in range(len(body)):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(0.05)
            elif kind == 'corrupt':
                self._send(200, b'\xff\xd8\xff\xe0' + bytes(range(256)) * 4,
                           'image/jpeg')
            elif kind == 'html':
                self._send(200, b'<html><body>moved</body></html>',
                           'text/html')
            elif kind == 'flaky' and hits == 1:
                self._send(503, b'busy', 'text/plain')
            elif kind == 'to-file':
                self.send_response(302)
                self.send_header('Location', 'file:///etc/passwd')
                self.end_headers()
            else:
                self._send(200, body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeouts)


@contextlib.contextmanager
def local_image_server(slow=1.5, size=48):
    """Serve generated images, 404s, slow and corrupt answers on
    127.0.0.1 (a free port) for the duration of a ``with`` block.

    Yields:
        ThreadingHTTPServer: with ``url(path)``, ``hits`` (requests per
        path) and ``image_bytes(n)`` (the PNG served for number ``n``).
    """
    server = ThreadingHTTPServer(('127.0.0.1', 0), _ImageHandler)
    server.daemon_threads = True
    server.lock = threading.Lock()
    server.hits = {}
    server.slow = slow

    def image_bytes(n):
        buf = io.BytesIO()
        class_image(n % 5, n, size, 5).save(buf, format='PNG')
        return buf.getvalue()

    server.image_bytes = image_bytes
    host, port = server.server_address
    server.url = lambda path: f'http://{host}:{port}{path}'
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs=dict(poll_interval=0.05),
        daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
