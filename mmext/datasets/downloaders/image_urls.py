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
(also after redirects), and an image is written to a temporary name unique
to the task and renamed, so an interrupted run never leaves a truncated
JPEG. A URL listed on several lines is fetched once and every line maps to
the one file.

Limits hold for the whole run, not only per image: every attempt has one
wall-clock deadline covering name lookup, connect, headers and body
(:mod:`.limits`; a server dribbling its headers cannot hold a worker),
decoding holds a share of one :class:`DecodeBudget` shared by all workers
(12 workers decoding 49-Mpx PNGs needed 5.5 GB before), and Ctrl-C aborts
the open connections and writes the log of what finished within seconds.

Every image is decoded with PIL, converted to RGB, resized to
``size x size`` with LANCZOS (aspect ratio not kept, as in the thesis
code) and saved as JPEG quality 95.
"""
import hashlib
import http.client
import io
import os
import os.path as osp
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from urllib.parse import quote, urlsplit, urlunsplit

from PIL import Image
from tqdm import tqdm

from .download_log import (COLUMNS, RETRY_CODES, STATUSES, DownloadRecord,
                           read_download_log, write_download_log)
from .limits import (BYTES_PER_PIXEL, DEFAULT_DECODE_BUDGET, Attempt,
                     DecodeBudget, HTTPOnlyRedirects, Interrupted,
                     abort_attempts, check_budget, return_freed_pixels_to_os)

__all__ = [
    'STATUSES', 'COLUMNS', 'DownloadRecord', 'DecodeBudget', 'Interrupted',
    'download_images', 'fetch_image', 'image_file_name', 'normalize_url',
    'read_download_log', 'write_download_log'
]

#: longest URL fetched (longer ones are ``invalid_url``)
MAX_URL_CHARS = 8192
# ASCII printable except space: kept as is; space, controls and non-ASCII
# are percent-encoded (as a browser does)
_URL_SAFE = ''.join(chr(c) for c in range(33, 127))


class _Failure(Exception):

    def __init__(self, status, detail):
        super().__init__(detail)
        self.status, self.detail = status, str(detail)


def image_file_name(url):
    """``<sha1 of the URL>.jpg``: one name per URL, never a path."""
    return hashlib.sha1(url.encode('utf-8')).hexdigest() + '.jpg'


def normalize_url(url):
    """The ASCII form of an http(s) URL, for ``http.client``.

    Spaces and non-ASCII characters in the path and query are
    percent-encoded, a non-ASCII host name IDNA-encoded.

    Raises:
        ValueError: The URL cannot be fetched (another scheme, no or a
            malformed host, a bad port, control characters, too long); the
            message is the reason recorded as ``invalid_url``.
    """
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f'over {MAX_URL_CHARS} characters')
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValueError('a control character in the URL')
    parts = urlsplit(url)  # ValueError on a malformed IPv6 host
    if parts.scheme not in ('http', 'https'):
        raise ValueError('not an http(s) URL')
    if not parts.hostname or any(c.isspace() for c in parts.netloc):
        raise ValueError('no host or a space in the host')
    parts.port  # ValueError on a port that is not a number or too large
    netloc = parts.netloc
    if not netloc.isascii():
        if '@' in netloc:
            raise ValueError('non-ASCII user name in the URL')
        try:
            host = parts.hostname.encode('idna').decode('ascii')
        except UnicodeError:
            raise ValueError('a host name IDNA cannot encode') from None
        netloc = host + (f':{parts.port}' if parts.port else '')
    return urlunsplit((parts.scheme, netloc, quote(parts.path, _URL_SAFE),
                       quote(parts.query, _URL_SAFE), ''))


def _fetch_bytes(url, timeout, max_bytes, user_agent, stop=None):
    """Body of a 200 answer, all of it within ``timeout`` seconds."""
    try:
        url = normalize_url(url)
    except ValueError as e:
        raise _Failure('invalid_url', e) from None
    attempt = Attempt(timeout, stop)
    try:
        return _read_body(attempt, url, timeout, max_bytes, user_agent)
    except _Failure:
        raise
    except (OSError, ValueError, http.client.HTTPException) as e:
        if attempt.reason == 'interrupted':
            raise Interrupted() from None
        if attempt.reason == 'timeout':
            raise _Failure('timeout',
                           f'no complete answer within {timeout} s') from None
        if isinstance(e, urllib.error.HTTPError):
            raise _Failure('http_error', e.code) from None
        reason = e.reason if isinstance(e, urllib.error.URLError) else e
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise _Failure('timeout', f'no answer within {timeout} s') \
                from None
        raise _Failure('network_error',
                       f'{type(reason).__name__}: {reason}') from None
    finally:
        attempt.finish()


def _read_body(attempt, url, timeout, max_bytes, user_agent):
    request = urllib.request.Request(url, headers={'User-Agent': user_agent})
    opener = attempt.opener(HTTPOnlyRedirects)
    with opener.open(request, timeout=timeout) as response:
        if response.status != 200:
            raise _Failure('http_error', response.status)
        chunks, size = [], 0
        while True:
            chunk = response.read1(65536)  # returns what arrived
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise _Failure('not_image', f'over {max_bytes} bytes')
            chunks.append(chunk)
        if attempt.aborted.is_set():  # the watchdog cut the body short
            raise socket.timeout(attempt.reason)
        if response.length:
            raise _Failure('network_error',
                           f'closed {response.length} bytes short')
        return b''.join(chunks)


def _decode_resize(data, size, max_pixels, budget, stop=None):
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only
    except Exception as e:  # PIL raises many types on corrupt data
        raise _Failure('not_image', f'{type(e).__name__}: {e}') from None
    try:
        width, height = img.size
        if width * height > max_pixels:
            raise _Failure('not_image', f'{width}x{height} pixels')
        with budget.hold(width * height * BYTES_PER_PIXEL, stop):
            try:
                return img.convert('RGB').resize((size, size),
                                                 Image.Resampling.LANCZOS)
            finally:
                img.close()  # frees the decoded pixels inside the budget
    except (_Failure, Interrupted):
        raise
    except Exception as e:
        raise _Failure('not_image', f'{type(e).__name__}: {e}') from None
    finally:
        img.close()


def _save_jpeg(img, path):
    """Save via a temporary name unique to this task, then rename."""
    folder, name = osp.split(path)
    fd, part = tempfile.mkstemp(prefix=name + '.', suffix='.part', dir=folder)
    try:
        with open(fd, 'wb') as f:
            img.save(f, format='JPEG', quality=95)
        os.chmod(part, 0o644)
        os.replace(part, path)
    except BaseException:
        if osp.exists(part):
            os.unlink(part)
        raise


def fetch_image(url,
                path,
                size=224,
                timeout=10.0,
                retries=2,
                backoff=1.0,
                max_bytes=20 << 20,
                max_pixels=50_000_000,
                user_agent='mmext-image-downloader',
                decode_budget=None,
                stop=None):
    """Download ``url``, resize it and save it as JPEG at ``path``.

    Args:
        url (str): http(s) URL.
        path (str): Target file; written under a unique temporary name in
            its folder and renamed.
        size (int): Output side (square). Defaults to 224.
        timeout (float): Seconds per attempt for everything: name lookup,
            connect, headers and body. Defaults to 10.0.
        retries (int): Extra attempts after a timeout, a network error or
            HTTP 408/429/5xx. Defaults to 2.
        backoff (float): Seconds before retry k are ``backoff * 2**k``.
            Defaults to 1.0.
        max_bytes (int): Larger bodies are refused. Defaults to 20 MiB.
        max_pixels (int): Larger images are refused from their header,
            before decoding (decompression bombs). Defaults to 50M.
        user_agent (str): HTTP User-Agent.
        decode_budget (DecodeBudget, optional): Shared by the workers of a
            run. Defaults to :data:`DEFAULT_DECODE_BUDGET` (1 GiB).
        stop (threading.Event, optional): Set, the fetch ends at once
            with :class:`Interrupted`.

    Returns:
        tuple[str, str]: (status, detail), status one of :data:`STATUSES`.
    """
    budget = decode_budget or DEFAULT_DECODE_BUDGET
    check_budget(budget, max_pixels)
    for attempt in range(retries + 1):
        if stop is not None and stop.is_set():
            raise Interrupted()
        try:
            data = _fetch_bytes(url, timeout, max_bytes, user_agent, stop)
            img = _decode_resize(data, size, max_pixels, budget, stop)
            _save_jpeg(img, path)
            return 'saved', ''
        except _Failure as f:
            retry = f.status in ('timeout', 'network_error') or (
                f.status == 'http_error' and f.detail.isdigit()
                and int(f.detail) in RETRY_CODES)
            if not retry or attempt == retries:
                return f.status, f.detail
            delay = backoff * 2**attempt
            if stop is not None and stop.wait(delay):
                raise Interrupted() from None
            elif stop is None:
                time.sleep(delay)


def _plan(items, records, folder, image_dir, retry_failed):
    """Split items into jobs (one per distinct URL) and lines to skip."""
    on_disk = {e.name for e in os.scandir(folder) if e.is_file()}
    jobs, dups, first_line, skipped = [], {}, {}, 0
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
        elif url in first_line:  # fetched once, recorded for every line
            dups.setdefault(first_line[url], []).append((line, caption))
        else:
            first_line[url] = line
            jobs.append((line, caption, url, rel))
    return jobs, dups, skipped


def download_images(items,
                    out_dir,
                    log_file,
                    image_dir='images',
                    workers=16,
                    retry_failed=False,
                    progress=True,
                    save_every=30.0,
                    decode_budget=1 << 30,
                    grace=2.0,
                    **fetch_kwargs):
    """Download many images with threads; resumable; account for each URL.

    A URL is skipped when its file exists or when the log records a final
    failure (HTTP 4xx, not an image, invalid URL) unless
    ``retry_failed``; timeouts and network errors are tried again. A URL
    on several lines is fetched once; each line gets its record. The log
    is rewritten every ``save_every`` seconds and at the end. On Ctrl-C
    (``KeyboardInterrupt`` in the calling thread) the open connections are
    aborted, what finishes within ``grace`` seconds is recorded, the log
    is written and the ``KeyboardInterrupt`` re-raised.

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
        decode_budget (int): Bytes of decoded pixels all workers together
            may hold (see :class:`DecodeBudget`). Defaults to 1 GiB.
        grace (float): Seconds to wait for running fetches after Ctrl-C.
        **fetch_kwargs: Passed to :func:`fetch_image` (``size``,
            ``timeout``, ``retries``, ...).

    Returns:
        dict[str, int]: count per status over all items, plus 'skipped'
        (already done before this run; included in the counts).
    """
    folder = osp.join(out_dir, image_dir)
    os.makedirs(folder, exist_ok=True)
    records = read_download_log(log_file)
    jobs, dups, skipped = _plan(items, records, folder, image_dir,
                                retry_failed)
    budget = DecodeBudget(decode_budget)
    check_budget(budget, fetch_kwargs.get('max_pixels', 50_000_000))
    return_freed_pixels_to_os()  # else RSS keeps one image per worker
    stop = threading.Event()

    def run(job):
        line, caption, url, rel = job
        try:
            status, detail = fetch_image(
                url,
                osp.join(out_dir, rel),
                decode_budget=budget,
                stop=stop,
                **fetch_kwargs)
        except Interrupted:
            return None  # not recorded: tried again on resume
        file = rel if status == 'saved' else ''
        return [DownloadRecord(line, status, detail, file, url, caption)] + [
            DownloadRecord(dline, status, detail, file, url, dcaption)
            for dline, dcaption in dups.get(line, ())
        ]

    def collect(done):
        for future in done:
            for rec in future.result() or ():
                records[rec.line] = rec
            bar.update(1)

    last_save = time.monotonic()
    bar = tqdm(
        total=len(jobs),
        desc='downloading images',
        unit='img',
        disable=not progress)
    pool = ThreadPoolExecutor(max_workers=workers)
    pending, todo = set(), iter(jobs)
    try:
        while True:
            # a bounded window: 3.3M futures at once would not fit
            for job in todo:
                pending.add(pool.submit(run, job))
                if len(pending) >= workers * 4:
                    break
            if not pending:
                break
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            collect(done)
            if time.monotonic() - last_save > save_every:
                write_download_log(log_file, records)
                last_save = time.monotonic()
    except KeyboardInterrupt:
        abort_attempts(stop)
        pool.shutdown(wait=False, cancel_futures=True)
        # cancelled futures never count as done for wait(): leave them out
        running = {f for f in pending if not f.cancelled()}
        collect(wait(running, timeout=grace).done)
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        bar.close()
        write_download_log(log_file, records)
    counts = {s: 0 for s in STATUSES}
    for rec in records.values():
        counts[rec.status] = counts.get(rec.status, 0) + 1
    counts['skipped'] = skipped
    return counts
