# Copyright (c) mmext contributors. All rights reserved.
"""Opening files a user points mmext at, with bounds checked first.

``open()`` on a FIFO blocks until a writer appears, on a directory it raises
a bare ``IsADirectoryError``, and ``read()`` of a text file decodes it
whatever its size or encoding. Every reader of user input (checkpoints,
caffemodels, annotation files, TSVs, image lists) goes through these
helpers so each of those cases is one line naming the file and the fix,
raised before anything is allocated. mmengine's ``get_local_path`` /
``fileio`` do none of these checks.

Example:
    >>> import os, tempfile
    >>> from mmext.utils.fileio import read_text_file
    >>> path = os.path.join(tempfile.mkdtemp(), 'a.txt')
    >>> with open(path, 'wb') as f:
    ...     _ = f.write('caf\\u00e9\\n'.encode('utf-8-sig'))
    >>> read_text_file(path, 'annotation file')
    'café\\n'
"""
import codecs
import errno
import os
import stat

__all__ = [
    'InputFileError', 'file_kind', 'open_regular_file', 'read_text_file',
    'check_regular_file'
]

_KINDS = ((stat.S_ISDIR, 'a directory'), (stat.S_ISFIFO, 'a FIFO'),
          (stat.S_ISSOCK, 'a socket'), (stat.S_ISCHR, 'a character device'),
          (stat.S_ISBLK, 'a block device'))


class InputFileError(ValueError):
    """A file a user gave cannot be used; the message names it and the
    fix."""


def file_kind(mode):
    """What a file is, from its ``st_mode`` ('a FIFO', 'a directory', ...;
    'a regular file' for one)."""
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return 'a regular file' if stat.S_ISREG(mode) else 'a special file'


def check_regular_file(path, what='file', max_bytes=None):
    """Raise unless ``path`` is a regular file of at most ``max_bytes``.

    Follows symlinks (a link to a regular file is fine). Returns its size.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        InputFileError: A directory, FIFO, device or socket, or too large.
    """
    st = os.stat(path)
    return _check_stat(st, path, what, max_bytes)


def _check_stat(st, path, what, max_bytes):
    if not stat.S_ISREG(st.st_mode):
        raise InputFileError(
            f'{what} {os.fspath(path)} is {file_kind(st.st_mode)}, not a '
            f'regular file: point to the file itself')
    if max_bytes is not None and st.st_size > max_bytes:
        raise InputFileError(
            f'{what} {os.fspath(path)} has {st.st_size} bytes, more than '
            f'the limit of {max_bytes}: check it is the right file, or '
            f'raise the limit')
    return st.st_size


def open_regular_file(path, what='file', max_bytes=None):
    """Open ``path`` for binary reading only if it is a regular file.

    The file is opened non-blocking and checked with ``fstat`` on the open
    descriptor, so neither a FIFO (which would block ``open``) nor a file
    swapped for one after a ``stat`` can hang the caller.

    Returns:
        A binary file object positioned at 0.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _O_CLOEXEC)
    except IsADirectoryError:
        raise InputFileError(
            f'{what} {os.fspath(path)} is a directory, not a regular file: '
            'point to the file itself') from None
    except OSError as e:
        if e.errno in (errno.ENXIO, errno.EOPNOTSUPP):  # socket
            raise InputFileError(
                f'{what} {os.fspath(path)} is a special file, not a '
                'regular file: point to the file itself') from None
        raise
    try:
        _check_stat(os.fstat(fd), path, what, max_bytes)
        os.set_blocking(fd, True)
        return os.fdopen(fd, 'rb')
    except BaseException:
        os.close(fd)
        raise


_O_CLOEXEC = getattr(os, 'O_CLOEXEC', 0)

_BOMS = ((codecs.BOM_UTF32_LE, 'utf-32'), (codecs.BOM_UTF32_BE, 'utf-32'),
         (codecs.BOM_UTF8, 'utf-8-sig'), (codecs.BOM_UTF16_LE, 'utf-16'),
         (codecs.BOM_UTF16_BE, 'utf-16'))


def read_text_file(path, what='file', max_bytes=1 << 30):
    """Read a text file a user gave: UTF-8, or UTF-8/16/32 with a BOM.

    Args:
        path (str | os.PathLike): The file.
        what (str): What the file is, for messages ('annotation file').
        max_bytes (int | None): Refuse larger files. Defaults to 1 GiB.

    Returns:
        str: The decoded text (the BOM removed).

    Raises:
        InputFileError: Not a regular file, too large, or not decodable;
            the message names the file, the byte offset and the line.
    """
    with open_regular_file(path, what, max_bytes) as f:
        # read what fstat says plus one byte: reading `max_bytes + 1` would
        # reserve the whole bound for every small file
        size = os.fstat(f.fileno()).st_size
        limit = size + 1 if max_bytes is None else min(size, max_bytes) + 1
        data = f.read(limit)
        while len(data) == limit and (max_bytes is None
                                      or len(data) <= max_bytes):
            more = f.read(1 << 20)  # the file grew since fstat
            if not more:
                break
            data += more
            limit = len(data)
    if max_bytes is not None and len(data) > max_bytes:  # grew meanwhile
        raise InputFileError(
            f'{what} {os.fspath(path)} has more than {max_bytes} bytes')
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)),
                    'utf-8')
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b'\n', 0, e.start) + 1
        raise InputFileError(
            f'{what} {os.fspath(path)} is not {encoding} text (byte '
            f'{e.start}, line {line}: {e.reason}): save it as UTF-8') from None
