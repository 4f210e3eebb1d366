# Copyright (c) mmext contributors. All rights reserved.
"""Shared by flowers17.py / flowers102.py: fetch with md5, extract, verify.

Not a command itself. Fetching fails within ``--timeout`` seconds with an
"offline" message naming the files to fetch by hand; ``--archive-dir`` then
uses those files instead of the network.
"""
import argparse
import hashlib
import os
import os.path as osp
import shutil
import sys
import tarfile
import urllib.error
import urllib.request

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


class FetchError(RuntimeError):
    """A file could not be fetched or failed its checksum."""


def md5sum(path, chunk=1 << 20):
    h = hashlib.md5()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def fetch(url, dest, md5, timeout):
    """Download ``url`` to ``dest`` (via ``dest.part``) and check its md5;
    an existing ``dest`` with the right md5 is kept."""
    if osp.isfile(dest) and md5sum(dest) == md5:
        print(f'{dest}: present, md5 ok')
        return dest
    part = dest + '.part'
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, \
                open(part, 'wb') as f:
            shutil.copyfileobj(r, f, 1 << 20)
    except (urllib.error.URLError, OSError) as e:
        if osp.exists(part):
            os.remove(part)
        reason = getattr(e, 'reason', e)
        raise FetchError(
            f'cannot fetch {url} ({reason}): this machine looks offline or '
            f'the server is unreachable; download the files listed by '
            f'--help elsewhere, put them in one folder and re-run with '
            f'--archive-dir FOLDER') from e
    got = md5sum(part)
    if got != md5:
        os.remove(part)
        raise FetchError(f'{url}: md5 {got} != expected {md5} (a truncated '
                         f'or changed file); fetch it again')
    os.replace(part, dest)
    print(f'{dest}: fetched, md5 ok')
    return dest


def from_archive_dir(archive_dir, name, md5):
    """A hand-downloaded file, md5-checked."""
    path = osp.join(archive_dir, name)
    if not osp.isfile(path):
        raise FetchError(f'{name} not found in --archive-dir {archive_dir}')
    got = md5sum(path)
    if got != md5:
        raise FetchError(f'{path}: md5 {got} != expected {md5}')
    print(f'{path}: md5 ok')
    return path


def extract(archive, out_dir):
    """Extract a .tgz safely (no absolute paths or '..' members)."""
    with tarfile.open(archive) as tar:
        try:
            tar.extractall(out_dir, filter='data')
        except TypeError:  # Python without extraction filters
            for m in tar.getmembers():
                if m.name.startswith('/') or '..' in m.name.split('/'):
                    raise FetchError(f'unsafe member {m.name} in {archive}')
            tar.extractall(out_dir)
    print(f'{archive}: extracted into {out_dir}')


def download(files, out_dir, base_url, timeout, archive_dir=None):
    """Fetch (or take from ``archive_dir``) each ``(name, md5)`` of
    ``files`` into ``out_dir`` and extract the ``.tgz`` ones."""
    os.makedirs(out_dir, exist_ok=True)
    for name, md5 in files:
        if archive_dir:
            path = from_archive_dir(archive_dir, name, md5)
            if not name.endswith('.tgz'):
                dest = osp.join(out_dir, name)
                if osp.abspath(path) != osp.abspath(dest):
                    shutil.copyfile(path, dest)
        else:
            path = fetch(base_url + name, osp.join(out_dir, name), md5,
                         timeout)
        if name.endswith('.tgz'):
            extract(path, out_dir)


def build_parser(description, name, files, base_url, default_root):
    listing = ', '.join(f'{base_url}{n} (md5 {m})' for n, m in files)
    parser = argparse.ArgumentParser(
        description=description,
        epilog=f'files: {listing}',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    d = sub.add_parser('download', help=f'fetch, md5-check and extract '
                       f'{name}, then verify it')
    d.add_argument('--out', default=default_root)
    d.add_argument('--base-url', default=base_url)
    d.add_argument('--timeout', type=float, default=10,
                   help='seconds before a silent server counts as offline')
    d.add_argument('--archive-dir', help='use files downloaded by hand')
    v = sub.add_parser('verify', help=f'check an existing {name} folder')
    v.add_argument('root', nargs='?', default=default_root)
    return parser


def report(name, root, summary, problems):
    """Print the summary and problems; return the exit code."""
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


def run(args, verify, files, name):
    """Dispatch ``download`` / ``verify``; return the exit code."""
    if args.command == 'download':
        try:
            download(files, args.out, args.base_url, args.timeout,
                     args.archive_dir)
        except FetchError as e:
            print(f'{name}: {e}', file=sys.stderr)
            return 2
        return verify(args.out)
    return verify(args.root)
