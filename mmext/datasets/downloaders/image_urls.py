# Copyright (c) mmext contributors. All rights reserved.
"""Threaded, resumable download of images listed by URL, with an accounting
of every URL.

Written for Conceptual Captions (3.3M web URLs, many of them dead), after
the ViLBERT thesis code's ``download_cc.py``, which lacked what is added
here: retries, a total time limit per attempt (its 0.3 s ``requests``
timeout bounds each socket wait, not the transfer), resuming (it rewrote
every file on each run), a record of *why* a URL failed, and safe file
names: it saved ``images/<url-basename>.jpg``, so URLs ending in the same
name overwrote each other (wrong caption-image pairs: 106 of the 8436 rows
of its ``validation.csv`` share 17 files, ``v2.jpg`` alone 26) and a name
taken from the URL could leave the folder. Here a file is named after the
SHA-1 of its URL (:func:`image_file_name`), only http(s) URLs are fetched
(also after redirects), and an image is written to a temporary name and
renamed, so an interrupted run never leaves a truncated JPEG.

Every image is decoded with PIL, converted to RGB, resized to
``size x size`` with LANCZOS (aspect ratio not kept, as in the thesis
code) and saved as JPEG quality 95.
"""
import csv
import hashlib
import http.client
import io
import os
import os.path as osp
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import astuple, dataclass, fields
from urllib.parse import quote, urlsplit

from PIL import Image
from tqdm import tqdm

__all__ = [
    'STATUSES', 'DownloadRecord', 'download_images', 'fetch_image',
    'image_file_name', 'read_download_log', 'write_download_log'
]

#: outcome of one URL: saved, or why not
STATUSES = ('saved', 'http_error', 'timeout', 'not_image', 'network_error',
            'invalid_url')
#: HTTP codes worth retrying (others are final)
RETRY_CODES = (408, 429, 500, 502, 503, 504)


@dataclass(slots=True)  # 3.3M of them for the CC training set
class DownloadRecord:
    """One row of the accounting CSV.

    ``line`` is the URL's 1-based line in its list, ``file`` the saved
    image relative to the output folder (empty unless saved), ``detail``
    the HTTP code or error text.
    """
    line: int
    status: str
    detail: str
    file: str
    url: str
    caption: str

    @property
    def final(self):
        """True when retrying cannot help (saved, 4xx, not an image)."""
        if self.status == 'http_error':
            return not (self.detail.isdigit()
                        and int(self.detail) in RETRY_CODES)
        return self.status in ('saved', 'not_image', 'invalid_url')


COLUMNS = tuple(f.name for f in fields(DownloadRecord))


def image_file_name(url):
    """``<sha1 of the URL>.jpg``: one name per URL, never a path."""
    return hashlib.sha1(url.encode('utf-8')).hexdigest() + '.jpg'


class _HTTPOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only (urllib also follows ftp)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urlsplit(newurl).scheme not in ('http', 'https'):
            raise urllib.error.HTTPError(
                newurl, code, f'redirect to a non-http URL {newurl}', headers,
                fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Failure(Exception):

    def __init__(self, status, detail):
        super().__init__(detail)
        self.status, self.detail = status, str(detail)


def _fetch_bytes(url, timeout, max_bytes, user_agent):
    """Body of a 200 answer, read within ``timeout`` seconds in total."""
    if urlsplit(url).scheme not in ('http', 'https') or \
            not urlsplit(url).netloc:
        raise _Failure('invalid_url', 'not an http(s) URL')
    if not url.isascii():  # http.client sends ASCII only
        url = quote(url, safe=":/?#[]@!$&'()*+,;=%~")
    opener = urllib.request.build_opener(_HTTPOnlyRedirects)
    request = urllib.request.Request(url, headers={'User-Agent': user_agent})
    deadline = time.monotonic() + timeout
    try:
        with opener.open(request, timeout=timeout) as response:
            if response.status != 200:
                raise _Failure('http_error', response.status)
            chunks, size = [], 0
            while True:
                if time.monotonic() > deadline:
                    raise _Failure('timeout', f'transfer over {timeout} s')
                chunk = response.read1(65536)  # returns what arrived
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise _Failure('not_image', f'over {max_bytes} bytes')
                chunks.append(chunk)
            return b''.join(chunks)
    except urllib.error.HTTPError as e:
        raise _Failure('http_error', e.code) from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, (socket.timeout, TimeoutError)):
            raise _Failure('timeout', 'connect') from None
        raise _Failure('network_error', e.reason) from None
    except (socket.timeout, TimeoutError):
        raise _Failure('timeout', 'read') from None
    except (OSError, ValueError, http.client.HTTPException) as e:
        raise _Failure('network_error', f'{type(e).__name__}: {e}') from None


def _decode_resize(data, size, max_pixels):
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > max_pixels:
                raise _Failure('not_image', f'{img.width}x{img.height} pixels')
            img = img.convert('RGB')
            return img.resize((size, size), Image.Resampling.LANCZOS)
    except _Failure:
        raise
    except Exception as e:  # PIL raises many types on corrupt data
        raise _Failure('not_image', f'{type(e).__name__}: {e}') from None


def fetch_image(url,
                path,
                size=224,
                timeout=10.0,
                retries=2,
                backoff=1.0,
                max_bytes=20 << 20,
                max_pixels=50_000_000,
                user_agent='mmext-image-downloader'):
    """Download ``url``, resize it and save it as JPEG at ``path``.

    Args:
        url (str): http(s) URL.
        path (str): Target file; written as ``path + '.part'`` and renamed.
        size (int): Output side (square). Defaults to 224.
        timeout (float): Seconds per attempt, connect + transfer (checked
            between reads, so a stalled read may add up to one more
            ``timeout``). Defaults to 10.0.
        retries (int): Extra attempts after a timeout, a network error or
            HTTP 408/429/5xx. Defaults to 2.
        backoff (float): Seconds before retry k are ``backoff * 2**k``.
            Defaults to 1.0.
        max_bytes (int): Larger bodies are refused. Defaults to 20 MiB.
        max_pixels (int): Larger images are refused (decompression bombs).
            Defaults to 50M.
        user_agent (str): HTTP User-Agent.

    Returns:
        tuple[str, str]: (status, detail), status one of :data:`STATUSES`.
    """
    for attempt in range(retries + 1):
        try:
            data = _fetch_bytes(url, timeout, max_bytes, user_agent)
            img = _decode_resize(data, size, max_pixels)
            part = path + '.part'
            img.save(part, format='JPEG', quality=95)
            os.replace(part, path)
            return 'saved', ''
        except _Failure as f:
            retry = f.status in ('timeout', 'network_error') or (
                f.status == 'http_error' and f.detail.isdigit()
                and int(f.detail) in RETRY_CODES)
            if not retry or attempt == retries:
                return f.status, f.detail
            time.sleep(backoff * 2**attempt)


def read_download_log(path):
    """Records of an accounting CSV by line (empty if there is none)."""
    if not osp.isfile(path):
        return {}
    records = {}
    with open(path, encoding='utf-8', newline='') as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(
                f'{path}: columns {reader.fieldnames}, expected {COLUMNS}; '
                'not a download log of this tool (move it away)')
        for row in reader:
            row['line'] = int(row['line'])
            records[row['line']] = DownloadRecord(**row)
    return records


def write_download_log(path, records):
    """Write ``{line: DownloadRecord}`` as the accounting CSV (atomic)."""
    part = path + '.part'
    with open(part, 'w', encoding='utf-8', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(astuple(records[k]) for k in sorted(records))
    os.replace(part, path)


def download_images(items,
                    out_dir,
                    log_file,
                    image_dir='images',
                    workers=16,
                    retry_failed=False,
                    progress=True,
                    save_every=30.0,
                    **fetch_kwargs):
    """Download many images with threads; resumable; account for each URL.

    A URL is skipped when its file exists or when the log records a final
    failure (HTTP 4xx, not an image, invalid URL) unless
    ``retry_failed``; timeouts and network errors are tried again. The log
    is rewritten every ``save_every`` seconds and at the end (also on
    Ctrl-C).

    Args:
        items (Iterable[tuple[int, str, str]]): (line, caption, url).
        out_dir (str): Output folder.
        log_file (str): Accounting CSV (columns :data:`COLUMNS`).
        image_dir (str): Image folder inside ``out_dir``.
            Defaults to 'images'.
        workers (int): Threads. Defaults to 16.
        retry_failed (bool): Also retry final failures. Defaults to False.
        progress (bool): Show a tqdm bar. Defaults to True.
        save_every (float): Seconds between log saves. Defaults to 30.
        **fetch_kwargs: Passed to :func:`fetch_image` (``size``,
            ``timeout``, ``retries``, ...).

    Returns:
        dict[str, int]: count per status over all items, plus 'skipped'
        (already done before this run; included in the counts).
    """
    folder = osp.join(out_dir, image_dir)
    os.makedirs(folder, exist_ok=True)
    records = read_download_log(log_file)
    on_disk = {e.name for e in os.scandir(folder) if e.is_file()}
    todo, skipped = [], 0
    for line, caption, url in items:
        name = image_file_name(url)
        rel = osp.join(image_dir, name)
        old = records.get(line)
        if old is not None and old.url != url:
            old = None  # the list changed: this line is a new URL
        if name in on_disk:
            records[line] = DownloadRecord(line, 'saved', '', rel, url,
                                           caption)
            skipped += 1
        elif old is not None and old.final and old.status != 'saved' \
                and not retry_failed:
            skipped += 1
        else:
            todo.append((line, caption, url, rel))

    def run(job):
        line, caption, url, rel = job
        status, detail = fetch_image(url, osp.join(out_dir, rel),
                                     **fetch_kwargs)
        return DownloadRecord(line, status, detail,
                              rel if status == 'saved' else '', url, caption)

    last_save = time.monotonic()
    bar = tqdm(
        total=len(todo),
        desc='downloading images',
        unit='img',
        disable=not progress)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending, jobs = set(), iter(todo)
            while True:
                # a bounded window: 3.3M futures at once would not fit
                for job in jobs:
                    pending.add(pool.submit(run, job))
                    if len(pending) >= workers * 4:
                        break
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    rec = future.result()
                    records[rec.line] = rec
                    bar.update(1)
                if time.monotonic() - last_save > save_every:
                    write_download_log(log_file, records)
                    last_save = time.monotonic()
    finally:
        bar.close()
        write_download_log(log_file, records)
    counts = {s: 0 for s in STATUSES}
    for rec in records.values():
        counts[rec.status] = counts.get(rec.status, 0) + 1
    counts['skipped'] = skipped
    return counts
