# Copyright (c) mmext contributors. All rights reserved.
"""Limits of an image download run: one wall-clock deadline per HTTP
attempt (DNS + connect + TLS + headers + body) and one decode budget shared
by all workers.

``urllib``'s ``timeout`` is a per-socket-operation timeout: a server that
sends its status line and headers one byte a second never lets a single
``recv`` wait that long, so the request never ends (``http.client`` reads
headers line by line, out of reach of a check between body reads), and the
name lookup is not bounded at all. Here every socket an attempt opens is
registered with one watchdog thread, which shuts the socket down when the
attempt's deadline passes (or when the run is interrupted): the blocked
``recv`` returns at once, whatever it was reading. The name lookup runs in
a daemon thread that the attempt stops waiting for at the deadline.

The pixel cap of one image does not bound a run: 12 workers decoding
49-Mpx PNGs at once took 5.5 GB. :class:`DecodeBudget` makes the workers
share one budget of decoded bytes.

Example:
    >>> attempt = Attempt(timeout=5.0)
    >>> opener = attempt.opener()  # urllib opener bound to the deadline
    >>> # with opener.open(url, timeout=5.0) as response: ...
    >>> attempt.finish()
"""
import ctypes
import functools
import heapq
import http.client
import ipaddress
import itertools
import socket
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from urllib.parse import urlsplit

__all__ = [
    'Attempt', 'abort_attempts', 'DecodeBudget', 'Interrupted', 'check_budget',
    'BYTES_PER_PIXEL'
]

#: bytes of memory one decoded pixel may take: the decoded image and its
#: RGB copy, 4 bytes a pixel each in PIL, plus the resize (measured: a
#: 12-Mpx RGB PNG raised the peak RSS by 8.4 bytes a pixel)
BYTES_PER_PIXEL = 9


class Interrupted(Exception):
    """The run's stop flag was set (Ctrl-C) during a fetch."""


class Attempt:
    """The deadline of one try at a URL and the sockets it opened.

    Args:
        timeout (float): Seconds from now to the deadline.
        stop (threading.Event, optional): The run's stop flag; set, it
            aborts the attempt (see :func:`abort_attempts`).
    """

    def __init__(self, timeout, stop=None):
        self.deadline = time.monotonic() + timeout
        self.stop = stop
        self.reason = None  # 'timeout' or 'interrupted' once aborted
        self.aborted = threading.Event()
        self._socks = []  # dups: shutting one down stops the connection
        self._lock = threading.Lock()
        self._finished = False
        _WATCHDOG.watch(self)
        if stop is not None and stop.is_set():
            self.abort('interrupted')

    def remaining(self):
        """Seconds left (raises ``socket.timeout`` if none)."""
        left = self.deadline - time.monotonic()
        if left <= 0 or self.aborted.is_set():
            raise socket.timeout(self.reason or 'timeout')
        return left

    def register(self, sock):
        """Let the watchdog shut ``sock`` down at the deadline."""
        dup = sock.dup()
        with self._lock:
            self._socks.append(dup)
            if self.aborted.is_set():
                _shutdown(dup)

    def abort(self, reason):
        """Shut every socket down now; blocked reads return at once."""
        with self._lock:
            if self._finished or self.aborted.is_set():
                return
            self.reason = reason
            self.aborted.set()
            for sock in self._socks:
                _shutdown(sock)

    def finish(self):
        """The attempt is over: close the watchdog's handles."""
        with self._lock:
            self._finished = True
            for sock in self._socks:
                sock.close()
            self._socks.clear()

    def opener(self, *handlers):
        """A urllib opener whose connections obey this deadline."""
        return urllib.request.build_opener(*handlers,
                                           _DeadlineHTTPHandler(self),
                                           _DeadlineHTTPSHandler(self))


def _shutdown(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected yet, or already closed


class _Watchdog:
    """One daemon thread aborting attempts at their deadlines."""

    def __init__(self):
        self._heap = []  # (deadline, seq, attempt)
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread = None

    def watch(self, attempt):
        with self._cond:
            heapq.heappush(self._heap,
                           (attempt.deadline, next(self._seq), attempt))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name='mmext-deadlines', daemon=True)
                self._thread.start()
            self._cond.notify()

    def abort_where(self, stop):
        """Abort every watched attempt of the run whose flag is ``stop``."""
        with self._cond:
            attempts = [a for _, _, a in self._heap if a.stop is stop]
        for attempt in attempts:
            attempt.abort('interrupted')

    def _run(self):
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                deadline, _, attempt = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            attempt.abort('timeout')  # a no-op once finished


_WATCHDOG = _Watchdog()


def abort_attempts(stop):
    """Abort the in-flight attempts created with ``stop`` (on Ctrl-C)."""
    stop.set()
    _WATCHDOG.abort_where(stop)


def _resolve(host, port, attempt):
    """``getaddrinfo`` that gives up at the attempt's deadline (the lookup
    itself cannot be cancelled: its daemon thread ends on its own)."""
    try:
        ipaddress.ip_address(host)
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0,
                                  socket.AI_NUMERICHOST)
    except ValueError:
        pass
    box, done = [], threading.Event()

    def lookup():
        try:
            box.append(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
        except Exception as e:  # noqa: B902 (handed to the waiting thread)
            box.append(e)
        done.set()

    threading.Thread(target=lookup, name='mmext-dns', daemon=True).start()
    while not done.wait(min(0.05, attempt.remaining())):
        attempt.remaining()  # raises at the deadline or on abort
    if isinstance(box[0], Exception):
        raise box[0]
    return box[0]


def _connect(attempt, address, timeout=None, source_address=None, *args):
    """``socket.create_connection`` under the attempt's deadline."""
    host, port = address
    error = None
    for family, kind, proto, _, addr in _resolve(host, port, attempt):
        sock = socket.socket(family, kind, proto)
        try:
            attempt.register(sock)
            sock.settimeout(attempt.remaining())
            if source_address:
                sock.bind(source_address)
            sock.connect(addr)
            return sock
        except OSError as e:
            sock.close()
            error = e
            if attempt.aborted.is_set():
                break
    raise error or OSError(f'no address for {host}')


class _DeadlineConnection:
    """Mixin: an ``http.client`` connection that connects via
    :func:`_connect` (urllib builds it as ``http_class(host, timeout=...)``).
    """

    def __init__(self, *args, attempt, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = functools.partial(_connect, attempt)


class _HTTP(_DeadlineConnection, http.client.HTTPConnection):
    pass


class _HTTPS(_DeadlineConnection, http.client.HTTPSConnection):
    pass


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):

    def __init__(self, attempt):
        super().__init__()
        self.attempt = attempt

    def http_open(self, req):
        return self.do_open(
            functools.partial(_HTTP, attempt=self.attempt), req)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):

    def __init__(self, attempt):
        super().__init__()
        self.attempt = attempt

    def https_open(self, req):
        return self.do_open(
            functools.partial(_HTTPS, attempt=self.attempt),
            req,
            context=self._context)


class HTTPOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only (urllib also follows ftp)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urlsplit(newurl).scheme not in ('http', 'https'):
            raise urllib.error.HTTPError(
                newurl, code, f'redirect to a non-http URL {newurl}', headers,
                fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class DecodeBudget:
    """Bytes of decoded pixels that all workers may hold at once.

    A worker reads the image size from the header, then waits until its
    ``width * height * BYTES_PER_PIXEL`` fits next to what the others hold.

    Args:
        max_bytes (int): The budget; at least one image at the pixel cap.
    """

    def __init__(self, max_bytes):
        self.max_bytes = int(max_bytes)
        self.used = 0
        self.peak = 0  # highest ``used`` seen (for tests and reports)
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, nbytes, stop=None):
        if nbytes > self.max_bytes:
            raise ValueError(f'{nbytes} bytes exceed the decode budget of '
                             f'{self.max_bytes}')
        with self._cond:
            while self.used + nbytes > self.max_bytes:
                if stop is not None and stop.is_set():
                    raise Interrupted()
                self._cond.wait(0.1)
            self.used += nbytes
            self.peak = max(self.peak, self.used)
        try:
            yield
        finally:
            with self._cond:
                self.used -= nbytes
                self._cond.notify_all()


#: shared by :func:`fetch_image` calls that pass no budget
DEFAULT_DECODE_BUDGET = DecodeBudget(1 << 30)


def check_budget(budget, max_pixels):
    """Raise unless one image at the pixel cap fits the budget (else a
    worker would wait for ever)."""
    if max_pixels * BYTES_PER_PIXEL > budget.max_bytes:
        raise ValueError(
            f'max_pixels={max_pixels} needs {max_pixels * BYTES_PER_PIXEL} '
            f'bytes to decode, over the decode budget of {budget.max_bytes}'
            ': raise the budget or lower max_pixels')


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


@functools.lru_cache(maxsize=1)
def return_freed_pixels_to_os(threshold=1 << 20):
    """Make freed image buffers leave the process (glibc only; once).

    glibc serves an allocation over its mmap threshold with ``mmap`` and
    then raises the threshold to that size (up to 32 MiB), so PIL's 16 MiB
    pixel blocks come from per-thread malloc arenas from then on, and each
    worker keeps its last image after freeing it: 4 workers decoding
    12-Mpx PNGs one at a time (a budget of one image) still peaked at
    +221 MiB instead of +96 MiB. A fixed threshold (as
    ``MALLOC_MMAP_THRESHOLD_=1048576`` would set) keeps large buffers
    mapped and unmapped on free: +98 MiB.

    Returns:
        bool: Whether the threshold was set.
    """
    try:
        return bool(ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):  # not glibc
        return False
