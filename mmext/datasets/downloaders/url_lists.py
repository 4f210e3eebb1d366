# Copyright (c) mmext contributors. All rights reserved.
"""The files of an image-URL download: the URL list (a
``caption<TAB>url`` TSV) and the accounting CSV, read with line numbers.

Written because reading them with ``open(path, encoding='utf-8')`` turned
a stray Latin-1 byte into a raw ``UnicodeDecodeError`` (no file, no line),
read a 1 GB line without a newline whole, and turned a hand-edited log line
(``line`` not a number, a column missing) into a ``ValueError`` /
``TypeError`` traceback. Here the TSV is decoded line by line (UTF-8, or
UTF-8/16/32 with a byte-order mark) and every problem is one
:class:`~mmext.utils.fileio.InputFileError` or
:class:`~mmext.datasets.image_text.RecordError` line naming the file and
the line.

Example:
    >>> for line, caption, url in read_url_tsv('captions.tsv'):
    ...     pass  # doctest: +SKIP
"""
import codecs
import csv
import io
import os
import tempfile
from dataclasses import astuple, dataclass, fields

from mmext.utils.fileio import InputFileError, open_regular_file
from ..image_text import RecordError

__all__ = [
    'STATUSES', 'DownloadRecord', 'read_url_tsv', 'read_download_log',
    'write_download_log', 'summarize_downloads'
]

#: outcome of one URL: saved, or why not
STATUSES = ('saved', 'http_error', 'timeout', 'not_image', 'network_error',
            'invalid_url')
#: HTTP codes worth retrying (others are final)
RETRY_CODES = (408, 429, 500, 502, 503, 504)
#: longest TSV line read (bytes); longer ones are refused, not loaded
MAX_LINE_BYTES = 1 << 20
#: longest caption or URL (characters): the log must stay readable by
#: ``csv`` (whose default field limit is 131072)
MAX_FIELD_CHARS = 65536


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

_WIDE_BOMS = ((codecs.BOM_UTF32_LE, 'utf-32'), (codecs.BOM_UTF32_BE, 'utf-32'),
              (codecs.BOM_UTF16_LE, 'utf-16'), (codecs.BOM_UTF16_BE, 'utf-16'))


def _utf8_lines(f, path, what):
    """(line number, text) of a UTF-8 file, decoded line by line; lines
    end at \\n, \\r\\n or \\r (as ``open()`` splits them)."""
    line_no, offset = 0, 0
    if f.read(3) != codecs.BOM_UTF8:
        f.seek(0)
    else:
        offset = 3
    while True:
        raw = f.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        if len(raw) > MAX_LINE_BYTES:
            raise InputFileError(
                f'{what} {path}: line {line_no + 1} is longer than '
                f'{MAX_LINE_BYTES} bytes: not a caption<TAB>url list')
        try:
            text = raw.decode('utf-8')
        except UnicodeDecodeError as e:
            raise InputFileError(
                f'{what} {path} is not UTF-8 text (line {line_no + 1}, byte '
                f'{offset + e.start}: {e.reason}): save it as UTF-8') from None
        offset += len(raw)
        text = text[:-1] if text.endswith('\n') else text
        text = text[:-1] if text.endswith('\r') else text
        for part in text.split('\r'):
            line_no += 1
            yield line_no, part


def _wide_lines(f, path, what, encoding):
    """(line number, text) of a UTF-16/32 file with a byte-order mark."""
    text = io.TextIOWrapper(f, encoding=encoding, newline=None)
    line_no = 0
    while True:
        try:
            line = text.readline(MAX_LINE_BYTES + 1)
        except UnicodeDecodeError as e:
            raise InputFileError(
                f'{what} {path} is not {encoding} text (after line '
                f'{line_no}: {e.reason}): save it as UTF-8') from None
        if not line:
            return
        line_no += 1
        if len(line) > MAX_LINE_BYTES:
            raise InputFileError(
                f'{what} {path}: line {line_no} is longer than '
                f'{MAX_LINE_BYTES} characters: not a caption<TAB>url list')
        yield line_no, line.rstrip('\n')


def read_url_tsv(path, what='ConceptualCaptions'):
    """(line, caption, url) of each line of a ``caption<TAB>url`` TSV.

    The file has no header. Blank lines are skipped; any other line
    without exactly two non-empty fields raises :class:`RecordError`
    naming the file and the line. Lines are numbered as ``open()`` splits
    them (at \\n, \\r\\n and \\r), so the numbers match the download log.

    Args:
        path (str): The TSV.
        what (str): The data set, for messages.

    Yields:
        tuple[int, str, str]: 1-based line, caption, URL (both stripped).

    Raises:
        InputFileError: Not a regular file, not UTF-8 (or BOM'd UTF-16/32)
            text, or a line over :data:`MAX_LINE_BYTES`.
        RecordError: A malformed line.
    """
    path = os.fspath(path)
    with open_regular_file(path, f'{what} TSV') as f:
        head = f.read(4)
        f.seek(0)
        encoding = next(
            (enc for bom, enc in _WIDE_BOMS if head.startswith(bom)), None)
        lines = _wide_lines(f, path, what, encoding) if encoding \
            else _utf8_lines(f, path, what)
        for line_no, line in lines:
            if not line.strip():
                continue
            yield (line_no, *_split_row(line, path, line_no, what))


def _split_row(line, path, line_no, what):
    fields = line.split('\t')
    if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
        cause = 'an empty caption or URL' if len(fields) == 2 \
            else f'{len(fields)} tab-separated field(s)'
        raise RecordError(f'{what}: {path}:{line_no}: {cause}; '
                          'expected "caption<TAB>url"')
    if max(map(len, fields)) > MAX_FIELD_CHARS:
        raise RecordError(f'{what}: {path}:{line_no}: a field of '
                          f'{max(map(len, fields))} characters (at most '
                          f'{MAX_FIELD_CHARS}); expected "caption<TAB>url"')
    return fields[0].strip(), fields[1].strip()


def _log_error(path, line_no, cause):
    return InputFileError(
        f'download log {path}, line {line_no}: {cause}; the log is damaged '
        '(edited by hand?): fix or delete that line, or delete the log '
        '(saved images are found again in the image folder)')


def _check_log_row(row, path, line_no, seen):
    if len(row) != len(COLUMNS):
        raise _log_error(path, line_no,
                         f'{len(row)} columns, expected {len(COLUMNS)}')
    rec = DownloadRecord(*row)
    if not rec.line.isdigit() or int(rec.line) < 1:
        raise _log_error(
            path, line_no, f"'line' is {rec.line[:40]!r}, not a positive "
            'number')
    rec.line = int(rec.line)
    if rec.status not in STATUSES:
        raise _log_error(
            path, line_no, f'unknown status {rec.status!r} '
            f'(expected one of {", ".join(STATUSES)})')
    if rec.line in seen:
        raise _log_error(path, line_no, f'TSV line {rec.line} listed twice')
    return rec


def read_download_log(path):
    """Records of an accounting CSV by TSV line (empty if there is none).

    Raises:
        InputFileError: Another file's columns, text that is not UTF-8 or
            a malformed row; the message names the file and the line.
    """
    if not os.path.lexists(path):
        return {}
    records = {}
    with open_regular_file(path, 'download log') as raw, \
            io.TextIOWrapper(raw, encoding='utf-8', newline='') as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if tuple(header or ()) != COLUMNS:
                raise InputFileError(
                    f'download log {path}: columns {header}, expected '
                    f'{list(COLUMNS)}; not a download log of this tool '
                    '(move it away)')
            for row in reader:
                rec = _check_log_row(row, path, reader.line_num, records)
                records[rec.line] = rec
        except UnicodeDecodeError as e:
            raise _log_error(path, reader.line_num + 1,
                             f'not UTF-8 ({e.reason})') from None
        except csv.Error as e:
            raise _log_error(path, reader.line_num, f'bad CSV ({e})') from None
    return records


def write_download_log(path, records):
    """Write ``{line: DownloadRecord}`` as the accounting CSV (atomic)."""
    fd, part = tempfile.mkstemp(
        prefix=os.path.basename(path) + '.',
        suffix='.part',
        dir=os.path.dirname(os.path.abspath(path)))
    try:
        with open(fd, 'w', encoding='utf-8', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            writer.writerows(astuple(records[k]) for k in sorted(records))
        os.chmod(part, 0o644)
        os.replace(part, path)
    except BaseException:
        if os.path.exists(part):
            os.unlink(part)
        raise


def summarize_downloads(items, records):
    """Count (line, caption, url) items per status in ``records``
    ('not attempted' for lines the log lacks or whose URL changed)."""
    counts = {}
    for line, _, url in items:
        rec = records.get(line)
        key = rec.status if rec is not None and rec.url == url \
            else 'not attempted'
        counts[key] = counts.get(key, 0) + 1
    return counts
