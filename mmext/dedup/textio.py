# Copyright (c) mmext contributors. All rights reserved.
"""File names in text outputs, the exclude file, and all-or-nothing writes.

A POSIX file name is any byte string without ``/`` and NUL: it may be
invalid UTF-8, hold a newline or start with ``#``. Python gives such names as
``str`` with lone surrogates (``os.fsdecode``), which UTF-8 files, SQLite
and JSON cannot store, and a newline or a leading ``#`` breaks a
line-based file. Every text output of :mod:`mmext.dedup` (cache keys, CSV,
JSON, HTML, the exclude file) therefore holds :func:`escape_path` of each
name, and :func:`unescape_path` gives the exact name back.

The escaping (identity for a UTF-8 name without ``\\``, control characters,
a leading ``#`` or leading / trailing spaces, i.e. for almost every name):

========  =============================================================
``\\\\``    a backslash
``\\n``     newline (``\\r``, ``\\t`` likewise)
``\\xNN``   the byte ``NN`` (hex): an undecodable byte, another control
          character, or a space at either end of the name
``\\#``     a ``#`` (written for a leading ``#``, which marks a comment)
========  =============================================================

On reading, a backslash followed by any other character is taken as a
``/`` separator, so exclude files written by hand on Windows
(``jpg\\image_00042.jpg``) keep working; write ``/`` separators to be safe.

Outputs are written under a temporary name in the target's folder and
renamed (``os.replace``) when complete (:class:`StagedFiles`), so a reader
never sees half a file and a failed run leaves the previous outputs intact.
"""
import contextlib
import os
import os.path as osp
import secrets

__all__ = [
    'escape_path', 'unescape_path', 'read_exclude_file', 'write_exclude_file',
    'relative_posix', 'StagedFiles', 'atomic_write'
]

_NAMED = {'\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t'}
_UNNAMED = {'\\': '\\', 'n': '\n', 'r': '\r', 't': '\t', '#': '#'}
_STRIPPED = ' \t\r\n\f\v'  # what a reader strips around a line
_HEX = '0123456789abcdefABCDEF'


def escape_path(name):
    """The escaped, valid-UTF-8 form of a file name (see module doc).

    Args:
        name (str | bytes | os.PathLike): A file name or path; ``str`` as
            ``os.fsdecode`` gives it (lone surrogates for undecodable
            bytes).

    Returns:
        str: One line of printable UTF-8 text.

    Example:
        >>> escape_path(os.fsdecode(b'#b\\xffd\\n.jpg'))
        '\\\\#b\\\\xffd\\\\n.jpg'
    """
    text = os.fsencode(name).decode('utf-8', 'surrogateescape')
    out = []
    last = len(text) - 1
    for i, ch in enumerate(text):
        code = ord(ch)
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif 0xDC80 <= code <= 0xDCFF:  # an undecodable byte
            out.append(f'\\x{code - 0xDC00:02x}')
        elif code < 0x20 or code == 0x7F or (ch == ' ' and i in (0, last)):
            out.append(f'\\x{code:02x}')
        elif ch == '#' and i == 0:
            out.append('\\#')
        else:
            out.append(ch)
    return ''.join(out)


def unescape_path(text):
    """The exact file name of :func:`escape_path`'s output (``str``, as
    ``os.fsdecode`` gives it).

    Raises:
        ValueError: A truncated ``\\xNN`` escape (the message names the
            column).
    """
    raw = bytearray()
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != '\\':
            j = text.find('\\', i)
            j = n if j < 0 else j
            raw += text[i:j].encode('utf-8', 'surrogateescape')
            i = j
            continue
        nxt = text[i + 1:i + 2]
        if nxt == 'x':
            digits = text[i + 2:i + 4]
            if len(digits) != 2 or digits.strip(_HEX):
                raise ValueError(
                    f'bad escape {text[i:i + 4]!r} at column {i + 1}: '
                    r"'\x' must be followed by two hex digits (write '\\' "
                    'for a backslash in a name)')
            raw.append(int(digits, 16))
            i += 4
        elif nxt and nxt in _UNNAMED:
            raw += _UNNAMED[nxt].encode()
            i += 2
        else:  # a Windows separator written by hand
            raw += b'/'
            i += 1
    return os.fsdecode(bytes(raw))


def relative_posix(path, root):
    """``path`` relative to ``root`` with '/' separators (as given if
    ``root`` is None)."""
    if root is None:
        return str(path).replace(os.sep, '/')
    rel = osp.relpath(osp.abspath(path), osp.abspath(root))
    return rel.replace(os.sep, '/')


def read_exclude_file(path):
    """The names listed in an exclude file, exactly as written.

    The file is UTF-8 (undecodable bytes are taken as the raw bytes of a
    name); ASCII white space around a line is dropped, blank lines and
    lines starting with ``#`` are skipped, and every other line is
    :func:`unescape_path`-ed. This is the one parser of the format
    (``ExcludeImages`` reads through it); :func:`write_exclude_file` is
    the one writer.

    Args:
        path (str | os.PathLike): The exclude file.

    Returns:
        list[str]: The names in file order (relative to the data set's
        ``data_root`` in files :func:`write_exclude_file` wrote).

    Raises:
        FileNotFoundError: No such file (the message names the tool that
            writes it).
        ValueError: Not a regular file, or a bad escape (naming the file
            and line).
    """
    if not osp.exists(path):
        raise FileNotFoundError(
            f'exclude file {os.fspath(path)!r} not found; '
            'tools/dedup/find_leakage.py writes it (see data/README.md)')
    if not osp.isfile(path):  # opening a FIFO would block
        raise ValueError(f'exclude file {os.fspath(path)!r} is not a '
                         'regular file; pass the exclude.txt that '
                         'tools/dedup/find_leakage.py writes')
    names = []
    with open(
            path, encoding='utf-8', errors='surrogateescape',
            newline='\n') as f:
        for number, line in enumerate(f, 1):
            line = line.strip(_STRIPPED)
            if not line or line.startswith('#'):
                continue
            try:
                names.append(unescape_path(line))
            except ValueError as e:
                raise ValueError(f'exclude file {path} line {number}: {e}; '
                                 'fix the line or re-run '
                                 'tools/dedup/find_leakage.py') from None
    return names


def write_exclude_file(paths, out_file, data_root=None, comments=()):
    """Write an exclude file; returns the relative paths written.

    ``# comment`` lines first, then one :func:`escape_path`-ed name per
    line, relative to ``data_root`` with '/' separators, so a name starting
    with ``#``, holding a newline or invalid UTF-8 is read back exactly by
    :func:`read_exclude_file` (and so by ``ExcludeImages``). The file is
    replaced only once complete (:func:`atomic_write`).

    Args:
        paths (Iterable[str]): Images to exclude (duplicates are written
            once, in first-seen order).
        out_file (str): Output text file (UTF-8).
        data_root (str, optional): Paths are written relative to it.
            Defaults to None (as given).
        comments (Iterable[str]): Header lines, written as ``# ...``.
            Defaults to ().

    Returns:
        list[str]: The relative paths written, in file order.
    """
    rel = list(dict.fromkeys(relative_posix(p, data_root) for p in paths))
    with atomic_write(out_file, encoding='utf-8', newline='\n') as f:
        for line in comments:
            for part in str(line).splitlines():
                f.write(f'# {escape_path(part)}\n')
        for name in rel:
            f.write(escape_path(name) + '\n')
    return rel


def _sibling(final):
    """Create an empty, unused temporary file beside ``final`` (the umask
    applies, as for ``open``) and return its path."""
    folder, base = osp.split(osp.abspath(final))
    for _ in range(100):
        tmp = osp.join(folder, f'.{base[:200]}.{secrets.token_hex(4)}.tmp')
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f'no free temporary name beside {final}')


class StagedFiles:
    """Files written under temporary names beside their targets and renamed
    to them together at the end.

    Used as a context manager: a clean exit renames every staged file onto
    its target (``os.replace``, atomic per file); an exception removes the
    temporary files and leaves the targets as they were.

    Example:
        >>> with StagedFiles() as staged:  # doctest: +SKIP
        ...     open(staged.path('out/a.csv'), 'w').write('x\\n')
        ...     raise_if_something_fails()  # out/a.csv is then untouched
    """

    def __init__(self):
        self._staged = []  # (temporary path, target)

    def path(self, final):
        """A new temporary file that :meth:`commit` renames to
        ``final``."""
        tmp = _sibling(final)
        self._staged.append((tmp, os.fspath(final)))
        return tmp

    def commit(self):
        """Rename every staged file onto its target."""
        staged, self._staged = self._staged, []
        for tmp, final in staged:
            os.replace(tmp, final)

    def discard(self):
        """Remove every staged file; the targets are left alone."""
        staged, self._staged = self._staged, []
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.commit()
            except BaseException:
                self.discard()
                raise
        else:
            self.discard()


@contextlib.contextmanager
def atomic_write(final, mode='w', **open_kwargs):
    """``open(final, mode)`` that replaces ``final`` only once the file is
    complete (see :class:`StagedFiles`)."""
    with StagedFiles() as staged:
        with open(staged.path(final), mode, **open_kwargs) as f:
            yield f
