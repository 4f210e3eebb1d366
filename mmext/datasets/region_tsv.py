# Copyright (c) mmext contributors. All rights reserved.
"""Random access to the released BUTD TSV region features.

peteanderson80/bottom-up-attention ``tools/generate_tsv.py`` writes one
row per image (``csv.DictWriter``, tab-delimited, ``\\r\\n`` line ends):
``image_id, image_w, image_h, num_boxes, boxes, features`` with boxes /
features base64 of float32 (N, 4) / (N, 2048). Its ``read_tsv.py`` (and
vilbert-multi-task's lmdb converters) read a whole file sequentially with
``csv.field_size_limit(sys.maxsize)``: no random access, no bound on a
line. Here each TSV gets a sidecar index ``<tsv>.mmext-index.npz`` (built
once, ~20 bytes an image: a 64-bit hash of the id, byte offset, line
length and line number, sorted by hash), checked against the TSV's size
and mtime and rebuilt when stale. Building takes a file lock and replaces
the sidecar atomically, so DDP ranks and data-loader workers that start
together build it once; when the TSV's folder is read-only the index is
kept in memory (with a warning). Every line is read with a bounded length
(``max_line_bytes``) and a lookup checks the id on the line it read.

Ids are matched as written in the TSV (ints for COCO: ``'9'``). mmext's
extractor escapes odd ids (:func:`tsv_image_id`, here so that readers and
the writer in :mod:`mmext.apis.butd_extraction` share it);
:meth:`RegionTSV.get` tries that escaped form first.
"""
import base64
import binascii
import csv
import glob
import hashlib
import os
import os.path as osp
import warnings
import zipfile

import numpy as np

from mmext.utils.fileio import open_regular_file
from .region_features import TSV_FIELDS, RegionFileError, finish_regions

__all__ = [
    'MAX_LINE_BYTES', 'RegionTSV', 'expand_tsv_files', 'index_path',
    'read_line', 'parse_tsv_line', 'build_tsv_index', 'iter_tsv_lines',
    'tsv_image_id'
]

#: A 100-box 2048-d row is ~1.1 MB of base64; 8 MiB allows ~700 boxes.
MAX_LINE_BYTES = 8 << 20
INDEX_VERSION = 1
_INDEX_SUFFIX = '.mmext-index.npz'


def tsv_image_id(image_id):
    """The id as written in the TSV: :func:`~mmext.dedup.textio.
    escape_path` (tabs, newlines, backslashes, undecodable bytes) and
    ``"`` as ``\\x22`` (a field starting with a quote is read as quoted by
    the csv module).

    Example:
        >>> tsv_image_id('a\\tb"c')
        'a\\\\tb\\\\x22c'
    """
    from mmext.dedup.textio import escape_path  # mmext.dedup is heavy
    return escape_path(image_id).replace('"', '\\x22')


def id_hash(image_id):
    """64-bit hash of a TSV id (``str`` or ``bytes`` as written)."""
    if isinstance(image_id, str):
        image_id = image_id.encode('utf-8', 'surrogateescape')
    return int.from_bytes(
        hashlib.blake2b(image_id, digest_size=8).digest(), 'little')


def expand_tsv_files(feature_file):
    """Sorted TSV paths of a path, glob or list of them.

    Raises:
        FileNotFoundError: A pattern or path matches no file.
    """
    patterns = [feature_file] if isinstance(
        feature_file, (str, os.PathLike)) else list(feature_file or [])
    if not patterns:
        raise FileNotFoundError('feature_file is empty; give a TSV path, a '
                                "glob such as 'data/cc/features/*.tsv' or a "
                                'list of them')
    files = []
    for pattern in map(os.fspath, patterns):
        found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) \
            else [pattern]
        found = [f for f in found if _INDEX_SUFFIX not in osp.basename(f)]
        if not found or not osp.exists(found[0]):
            raise FileNotFoundError(
                f'feature_file {pattern} matches no file; download the '
                'region TSVs or extract them with tools/feature_extraction/'
                'extract_regions.py --format tsv')
        files += found
    return list(dict.fromkeys(files))


def index_path(tsv_path):
    """The sidecar index of ``tsv_path``."""
    return os.fspath(tsv_path) + _INDEX_SUFFIX


def read_line(f, path, line_no, max_line_bytes):
    """The next line of binary file ``f`` (b'' at the end), at most
    ``max_line_bytes``; a longer line raises naming file and line (nothing
    longer is ever held in memory)."""
    line = f.readline(max_line_bytes + 1)
    if len(line) > max_line_bytes:
        raise RegionFileError(
            f'{path}: line {line_no} is longer than max_line_bytes='
            f'{max_line_bytes} (a 100-box 2048-d row is ~1.1 MB): raise '
            'the limit (max_line_bytes=, --max-line-mib) if rows are that '
            'large, else the file is not a BUTD TSV')
    return line


def _skip_rest_of_line(f, chunk=1 << 20):
    while True:
        part = f.readline(chunk)
        if not part or part.endswith(b'\n'):
            return


def iter_tsv_lines(f, path, max_line_bytes=MAX_LINE_BYTES, on_long=None):
    """Yield ``(line_no, offset, line)`` of every non-blank line.

    Args:
        on_long (callable, optional): Called with the error for an
            over-long line, which is then skipped; without it the error
            is raised.
    """
    offset, line_no = f.tell(), 0
    while True:
        line_no += 1
        try:
            line = read_line(f, path, line_no, max_line_bytes)
        except RegionFileError as e:
            if on_long is None:
                raise
            on_long(line_no, e)
            _skip_rest_of_line(f)
            offset = f.tell()
            continue
        if not line:
            return
        if line.strip():
            yield line_no, offset, line
        offset += len(line)


def _first_field(line):
    """The id as written; a csv-quoted id (``csv.DictWriter`` quotes a
    field with a tab or quote) is unquoted."""
    raw = line.split(b'\t', 1)[0]
    if raw.startswith(b'"'):
        try:
            text = line.decode('utf-8', 'surrogateescape')
            return next(csv.reader([text.rstrip('\r\n')], delimiter='\t'))[0]
        except (csv.Error, StopIteration):
            pass
    return raw.decode('utf-8', 'surrogateescape')


def parse_tsv_line(line, path, line_no):
    """One TSV row (bytes) -> region dict (as :func:`load_region_features`,
    ``image_id`` as written). Raises :class:`RegionFileError` naming file
    and line."""

    def bad(why):
        return RegionFileError(
            f'{path}: line {line_no} is not a BUTD TSV row ({why}); expected '
            f'tab-separated {", ".join(TSV_FIELDS)} with base64 float32 '
            'boxes / features')

    fields = line.rstrip(b'\r\n').split(b'\t')  # bytes: no str copy
    if len(fields) < len(TSV_FIELDS) or (len(fields) > len(TSV_FIELDS)
                                         and not fields[0].startswith(b'"')):
        raise bad(f'{len(fields)} fields')
    image_id = _first_field(line)
    w, h, n, boxes, feats = fields[-5:]
    try:
        w, h, n = int(w), int(h), int(n)
        boxes = base64.b64decode(boxes, validate=True)
        feats = base64.b64decode(feats, validate=True)
    except (ValueError, binascii.Error) as e:
        raise bad(str(e).split('\n')[0][:80]) from None
    if n < 0 or len(boxes) != 16 * n or (n and len(feats) %
                                         (4 * n)) or (not n and feats):
        raise bad(f'{len(boxes)} box bytes and {len(feats)} feature bytes '
                  f'for num_boxes={n}')
    out = dict(
        image_id=image_id,
        image_w=w,
        image_h=h,
        num_boxes=n,
        boxes=np.frombuffer(boxes, np.float32).reshape(n, 4).copy(),
        features=np.frombuffer(feats, np.float32).reshape(n, -1).copy())
    return finish_regions(f'{path} line {line_no}', out)


def _stat_key(path):
    st = os.stat(path)
    return int(st.st_size), int(st.st_mtime_ns)


def _scan(path, max_line_bytes):
    """Index arrays of one TSV (one pass, bounded lines)."""
    hashes, offsets, lengths, lines = [], [], [], []
    with open_regular_file(path, 'region TSV') as f:
        for line_no, offset, line in iter_tsv_lines(f, path, max_line_bytes):
            hashes.append(id_hash(_first_field(line)))
            offsets.append(offset)
            lengths.append(len(line))
            lines.append(line_no)
    order = np.argsort(np.asarray(hashes, np.uint64), kind='stable')
    return dict(
        hashes=np.asarray(hashes, np.uint64)[order],
        offsets=np.asarray(offsets, np.uint64)[order],
        lengths=np.asarray(lengths, np.uint32)[order],
        lines=np.asarray(lines, np.uint32)[order])


def _load_index(path, stat_key):
    """The sidecar's arrays when it is valid for ``stat_key``, else None."""
    side = index_path(path)
    try:
        with np.load(side, allow_pickle=False) as z:
            arr = {k: z[k] for k in z.files}
        ok = (
            int(arr['version']) == INDEX_VERSION
            and (int(arr['size']), int(arr['mtime_ns'])) == stat_key and len({
                len(arr[k])
                for k in ('hashes', 'offsets', 'lengths', 'lines')
            }) == 1 and (arr['offsets'] + arr['lengths'] <= stat_key[0]).all())
    except (OSError, ValueError, KeyError, TypeError, EOFError,
            zipfile.BadZipFile):
        return None
    return arr if ok else None


def build_tsv_index(path, max_line_bytes=MAX_LINE_BYTES):
    """Load ``<path>.mmext-index.npz`` or (re)build it when missing or
    stale (size / mtime differ). Safe to call from many processes: one
    builds under a lock, the others wait and load its result.

    Returns:
        dict: ``hashes`` (sorted uint64), ``offsets``, ``lengths``,
        ``lines``.
    """
    key = _stat_key(path)
    arr = _load_index(path, key)
    if arr is not None:
        return arr
    side = index_path(path)
    try:
        lock = open(side + '.lock', 'a')
    except OSError as e:  # a read-only folder: keep the index in memory
        warnings.warn(
            f'cannot write the index of {path} ({e.strerror}); it is built '
            'in memory by every process: make the folder writable to '
            'build it once')
        return _scan(path, max_line_bytes)
    with lock:
        _flock(lock)
        arr = _load_index(path, key)  # another process built it meanwhile
        if arr is None:
            arr = _scan(path, max_line_bytes)
            if _stat_key(path) != key:
                raise RegionFileError(
                    f'{path} changed while it was indexed; index it again '
                    'once it is complete')
            tmp = f'{side}.tmp{os.getpid()}.npz'
            np.savez(
                tmp,
                version=INDEX_VERSION,
                size=key[0],
                mtime_ns=key[1],
                **arr)
            os.replace(tmp, side)
    return arr


def _flock(f):
    try:
        import fcntl
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # released on close
    except (ImportError, OSError):  # no flock: atomic replace still holds
        pass


class RegionTSV:
    """Regions by image id from one or several BUTD TSV files.

    Args:
        feature_file (str | list[str]): A TSV, a glob or a list of them.
        max_line_bytes (int): Longest row read. Defaults to
            :data:`MAX_LINE_BYTES`.

    Example:
        >>> tsv = RegionTSV('data/coco/trainval_36/*.tsv')  # doctest: +SKIP
        >>> tsv.get(9)['features'].shape  # doctest: +SKIP
        (36, 2048)
    """

    def __init__(self, feature_file, max_line_bytes=MAX_LINE_BYTES):
        self.files = expand_tsv_files(feature_file)
        self.max_line_bytes = int(max_line_bytes)
        self._index = None
        self._handles, self._pid = {}, None

    def __repr__(self):
        return (f'RegionTSV({self.files[0]}' +
                (f' + {len(self.files) - 1} files)'
                 if len(self.files) > 1 else ')'))

    @property
    def index(self):
        """Merged index: hash-sorted ``hashes``, ``file`` (position in
        :attr:`files`), ``offsets``, ``lengths``, ``lines``."""
        if self._index is None:
            parts = [
                build_tsv_index(f, self.max_line_bytes) for f in self.files
            ]
            merged = {
                k: np.concatenate([p[k] for p in parts])
                for k in ('hashes', 'offsets', 'lengths', 'lines')
            }
            merged['file'] = np.concatenate([
                np.full(len(p['hashes']), i, np.int32)
                for i, p in enumerate(parts)
            ])
            order = np.argsort(merged['hashes'], kind='stable')
            self._index = {k: v[order] for k, v in merged.items()}
        return self._index

    def __len__(self):
        return len(self.index['hashes'])

    def _handle(self, i):
        if self._pid != os.getpid():  # forked worker / new rank: own handles
            self._handles, self._pid = {}, os.getpid()
        if i not in self._handles:
            self._handles[i] = open_regular_file(self.files[i], 'region TSV')
        return self._handles[i]

    def _read(self, j):
        idx = self.index
        i, n = int(idx['file'][j]), int(idx['lengths'][j])
        path, line_no = self.files[i], int(idx['lines'][j])
        if n > self.max_line_bytes:
            raise RegionFileError(
                f'{path}: line {line_no} has {n} bytes, more than '
                f'max_line_bytes={self.max_line_bytes}; raise max_line_bytes')
        f = self._handle(i)
        f.seek(int(idx['offsets'][j]))
        return path, line_no, f.read(n)

    def get(self, image_id):
        """Regions of ``image_id`` (int or str), or None when absent.

        Tries the id escaped as mmext's extractor writes it, then as given.
        A line whose id differs from the index (file replaced within the
        same mtime) raises naming the file.
        """
        raw = str(image_id)
        for key in dict.fromkeys((tsv_image_id(raw), raw)):
            idx = self.index
            h = np.uint64(id_hash(key))
            lo = int(np.searchsorted(idx['hashes'], h, 'left'))
            hi = int(np.searchsorted(idx['hashes'], h, 'right'))
            for j in range(lo, hi):  # equal hashes: check the id itself
                path, line_no, line = self._read(j)
                found = _first_field(line)
                if found == key:
                    return parse_tsv_line(line, path, line_no)
                if id_hash(found) != int(h):
                    raise RegionFileError(
                        f'{path}: line {line_no} does not hold the row its '
                        f'index {index_path(path)} says; delete that index '
                        'to rebuild it')
        return None

    def __getstate__(self):  # pickled into spawned workers: no handles
        state = dict(self.__dict__)
        state['_handles'], state['_pid'] = {}, None
        return state
