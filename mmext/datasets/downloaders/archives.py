# Copyright (c) mmext contributors. All rights reserved.
"""Official data files: fetch with an md5 check, extract safely, verify.

A data set published as a few files with known md5 sums (Oxford Flowers:
a ``.tgz`` of images and ``.mat`` split files) is described by an
:class:`OfficialRelease`; :func:`release_parser` and :func:`run_release`
give it the ``download`` / ``verify`` command line of
``tools/dataset_converters/flowers{17,102}.py``.

Download and md5 are mmpretrain's
(:func:`mmpretrain.datasets.utils.download_url_to_file`, which writes to a
temporary file and moves it into place, and
:func:`~mmpretrain.datasets.utils.calculate_md5`). Written here is what
``mmpretrain.datasets.utils`` lacks:

- a time limit: upstream opens the URL with no timeout, so an offline
  machine or a silent server hangs. :func:`fetch_file` sets the socket
  default timeout for the call (restored after) and fails within it with an
  "offline" message that names the fix (``--archive-dir``);
- errors naming the file: upstream's ``download_url`` raises "File not
  found or corrupted." and keeps the bad file (it also retries an https URL
  over plain http, doubling the wait offline). Here a download lands in
  ``<dest>.part`` and becomes ``dest`` only with the right md5; a mismatch
  names the URL and both sums and deletes the part file;
- hand-fetched files (:func:`take_from_archive_dir`), md5-checked alike;
- safe extraction: upstream's ``extract_archive`` calls
  ``tarfile.extractall`` without a filter, so a member named ``../x`` or
  ``/x``, or a link pointing out of the folder, writes outside it.
  :func:`safe_extract` checks every member first (nothing is written from
  an archive with an unsafe member) and extracts with tarfile's ``'data'``
  filter where Python has it.
"""
import argparse
import http.client
import os
import os.path as osp
import shutil
import socket
import sys
import tarfile
import urllib.error
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Tuple

from mmpretrain.datasets.utils import calculate_md5, download_url_to_file

__all__ = [
    'FetchError', 'fetch_file', 'take_from_archive_dir', 'safe_extract',
    'download_files', 'OfficialRelease', 'release_parser', 'run_release',
    'print_report'
]


class FetchError(RuntimeError):
    """A file could not be fetched, failed its checksum or is unsafe."""


@contextmanager
def _socket_timeout(seconds):
    """Make sockets opened without a timeout (upstream's urlopen) give up
    after ``seconds``, for the duration of the block."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def fetch_file(url, dest, md5, timeout=10.):
    """Download ``url`` to ``dest`` and check its md5.

    An existing ``dest`` with the right md5 is kept. The download goes to
    ``dest + '.part'`` and is renamed to ``dest`` only once its md5 is
    right.

    Args:
        url (str): The file's URL.
        dest (str): Where to store it; its folder must exist.
        md5 (str): The expected md5 hex digest.
        timeout (float): Seconds before a silent server counts as offline
            (per connect and per read). Defaults to 10.

    Returns:
        str: ``dest``.

    Raises:
        FetchError: Unreachable, timed out, or wrong md5.
    """
    if osp.isfile(dest) and calculate_md5(dest) == md5:
        print(f'{dest}: present, md5 ok')
        return dest
    part = dest + '.part'
    by_hand = ('download the files listed by --help elsewhere, put them in '
               'one folder and re-run with --archive-dir FOLDER')
    try:
        with _socket_timeout(timeout):
            download_url_to_file(url, part, progress=sys.stdout.isatty())
    except urllib.error.HTTPError as e:
        raise FetchError(f'cannot fetch {url} (HTTP {e.code} {e.reason}): '
                         f'the file moved or the server refuses it; '
                         f'{by_hand}') from e
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        if osp.exists(part):
            os.remove(part)
        reason = getattr(e, 'reason', e)
        raise FetchError(
            f'cannot fetch {url} ({reason}): this machine looks offline or '
            f'the server is unreachable; {by_hand}') from e
    got = calculate_md5(part)
    if got != md5:
        os.remove(part)
        raise FetchError(f'{url}: md5 {got} != expected {md5} (a truncated '
                         f'or changed file); fetch it again')
    os.replace(part, dest)
    print(f'{dest}: fetched, md5 ok')
    return dest


def take_from_archive_dir(archive_dir, name, md5):
    """The hand-downloaded file ``archive_dir/name``, md5-checked.

    Raises:
        FetchError: The file is missing or has another md5.
    """
    path = osp.join(archive_dir, name)
    if not osp.isfile(path):
        raise FetchError(f'{name} not found in --archive-dir {archive_dir}')
    got = calculate_md5(path)
    if got != md5:
        raise FetchError(f'{path}: md5 {got} != expected {md5}')
    print(f'{path}: md5 ok')
    return path


def _inside(path, folder):
    return path == folder or path.startswith(folder + os.sep)


def _unsafe_reason(member, out_dir):
    """Why extracting ``member`` into ``out_dir`` is unsafe, or None."""
    name = member.name
    if osp.isabs(name) or '..' in name.replace('\\', '/').split('/'):
        return 'its path leaves the folder'
    if member.isdev():
        return 'a device or FIFO'
    if member.issym() or member.islnk():
        target = member.linkname
        # a symlink is relative to its folder, a hard link to the archive
        base = osp.dirname(name) if member.issym() else ''
        if osp.isabs(target) or not _inside(
                osp.normpath(osp.join(out_dir, base, target)), out_dir):
            return f'a link out of the folder, to {target}'
    return None


def safe_extract(archive, out_dir):
    """Extract the tar archive ``archive`` (e.g. a ``.tgz``) into
    ``out_dir``, refusing it whole when one member is unsafe (an absolute
    path, a ``..`` component, a link out of ``out_dir``, a device).

    Raises:
        FetchError: An unsafe member (named), or not a readable archive.
    """
    out = osp.realpath(out_dir)
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                why = _unsafe_reason(m, out)
                if why:
                    raise FetchError(
                        f'unsafe member {m.name} in {archive} ({why}); '
                        f'nothing extracted: fetch the archive again from '
                        f'the official page')
            if hasattr(tarfile, 'data_filter'):
                tar.extractall(out_dir, members, filter='data')
            else:  # Python without extraction filters: checked above
                tar.extractall(out_dir, members)
    except tarfile.TarError as e:
        reason = ' '.join(str(e).split())  # one line
        raise FetchError(f'{archive} is not a readable tar archive '
                         f'({reason}); fetch it again') from e
    print(f'{archive}: extracted into {out_dir}')


def download_files(files, out_dir, base_url, timeout=10., archive_dir=None):
    """Fetch (or take from ``archive_dir``) each ``(name, md5)`` of
    ``files`` into ``out_dir`` and extract the ``.tgz`` ones there.

    Args:
        files (Sequence[tuple]): ``(file name, md5)`` pairs.
        out_dir (str): The data set folder (created).
        base_url (str): The URL ending in ``/`` that the names follow.
        timeout (float): See :func:`fetch_file`. Defaults to 10.
        archive_dir (str, optional): A folder of files downloaded by hand,
            used instead of the network. Defaults to None.
    """
    os.makedirs(out_dir, exist_ok=True)
    for name, md5 in files:
        if archive_dir:
            path = take_from_archive_dir(archive_dir, name, md5)
            if not name.endswith('.tgz'):
                dest = osp.join(out_dir, name)
                if osp.abspath(path) != osp.abspath(dest):
                    shutil.copyfile(path, dest)
        else:
            path = fetch_file(base_url + name, osp.join(out_dir, name), md5,
                              timeout)
        if name.endswith('.tgz'):
            safe_extract(path, out_dir)


@dataclass(frozen=True)
class OfficialRelease:
    """A data set published as files with known md5 sums.

    Args:
        name (str): The name in messages, e.g. ``'Flowers17'``.
        title (str): The name in help texts, e.g. ``'Flowers-17'``.
        base_url (str): The URL ending in ``/`` that the file names follow.
        files (tuple): ``(file name, md5)`` pairs; ``.tgz`` ones are
            extracted.
        default_root (str): The folder the configs read.
        check (Callable): ``check(root) -> (summary, problems)``, two lists
            of lines; no problem means the folder is fit to train on.
    """
    name: str
    title: str
    base_url: str
    files: Tuple[Tuple[str, str], ...]
    default_root: str
    check: Callable


def release_parser(release, description):
    """The ``download`` / ``verify`` command line of ``release``; the help
    lists every file with its URL and md5."""
    listing = ', '.join(f'{release.base_url}{n} (md5 {m})'
                        for n, m in release.files)
    parser = argparse.ArgumentParser(
        description=description,
        epilog=f'files: {listing}',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    d = sub.add_parser(
        'download',
        help=f'fetch, md5-check and extract '
        f'{release.title}, then verify it')
    d.add_argument('--out', default=release.default_root)
    d.add_argument('--base-url', default=release.base_url)
    d.add_argument(
        '--timeout',
        type=float,
        default=10,
        help='seconds before a silent server counts as offline')
    d.add_argument('--archive-dir', help='use files downloaded by hand')
    v = sub.add_parser(
        'verify', help=f'check an existing {release.title} '
        f'folder')
    v.add_argument('root', nargs='?', default=release.default_root)
    return parser


def print_report(name, root, summary, problems):
    """Print the summary and problems; return the exit code (1 on a
    problem)."""
    print(f'{name} in {root}:')
    for line in summary:
        print(f'  {line}')
    if problems:
        print(f'{len(problems)} problem(s):')
        for p in problems:
            print(f'  - {p}')
        return 1
    print('OK')
    return 0


def run_release(release, args):
    """Run the parsed ``download`` / ``verify`` command; return the exit
    code: 0 fine, 1 a problem in the folder, 2 a download failure."""
    if args.command == 'download':
        try:
            download_files(release.files, args.out, args.base_url,
                           args.timeout, args.archive_dir)
        except FetchError as e:
            print(f'{release.name}: {e}', file=sys.stderr)
            return 2
        root = args.out
    else:
        root = args.root
    summary, problems = release.check(root)
    return print_report(release.name, root, summary, problems)
