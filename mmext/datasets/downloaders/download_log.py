# Copyright (c) mmext contributors. All rights reserved.
"""The accounting CSV of an image-URL download, read with line numbers.

Written because reading it with ``csv.DictReader`` turned a hand-edited
line (``line`` not a number, a column missing, an unknown status) into a
raw ``ValueError`` / ``TypeError`` traceback and a stray Latin-1 byte into
a ``UnicodeDecodeError`` naming no file. Here each of them is one
:class:`~mmext.utils.fileio.InputFileError` line naming the log and the
line, with the fix.

Example:
    >>> records = read_download_log('captions.downloads.csv')  # doctest: +SKIP
"""
import csv
import io
import os
import tempfile
from dataclasses import astuple, dataclass, fields

from mmext.utils.fileio import InputFileError, open_regular_file

__all__ = [
    'STATUSES', 'DownloadRecord', 'read_download_log', 'write_download_log'
]

#: outcome of one URL: saved, or why not
STATUSES = ('saved', 'http_error', 'timeout', 'not_image', 'network_error',
            'invalid_url')
#: HTTP codes worth retrying (others are final)
RETRY_CODES = (408, 429, 500, 502, 503, 504)
#: longest caption or URL kept in the log (characters; longer ones are cut
#: there, the TSV stays the source): ``csv`` reads fields up to 131072
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


def _cut(row):
    return tuple(v[:MAX_FIELD_CHARS] if isinstance(v, str) else v for v in row)


def write_download_log(path, records):
    """Write ``{line: DownloadRecord}`` as the accounting CSV (atomic;
    fields over :data:`MAX_FIELD_CHARS` cut, so ``csv`` can read it back:
    a URL that long is ``invalid_url`` anyway)."""
    fd, part = tempfile.mkstemp(
        prefix=os.path.basename(path) + '.',
        suffix='.part',
        dir=os.path.dirname(os.path.abspath(path)))
    try:
        with open(fd, 'w', encoding='utf-8', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            writer.writerows(
                _cut(astuple(records[k])) for k in sorted(records))
        os.chmod(part, 0o644)
        os.replace(part, path)
    except BaseException:
        if os.path.exists(part):
            os.unlink(part)
        raise
