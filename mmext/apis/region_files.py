# Copyright (c) mmext contributors. All rights reserved.
"""The files of BUTD region extraction besides the regions: unique image
ids (``image_ids.csv``), the TSV resume check and ``failed_rank<r>.txt``.

``tools/generate_tsv.py`` named outputs by file stem, so ``same.jpg`` and
``same.png`` wrote one ``same.npz`` and two TSV rows ``same``, and it could
not resume. Here the id is the stem unless another input's stem is equal
ignoring case (a case-insensitive output folder would merge them), then
the file name with its extension, then that name plus ``~`` and 8 hex
digits of its SHA-1 (:func:`assign_image_ids`); on resume a damaged TSV
line is moved to ``regions_rank<r>.tsv.damaged`` with its line number and
that image is extracted again (:func:`done_tsv_ids`). Moved here from
``mmext.models.detectors.butd.extract`` (issue 23).
"""
import csv
import hashlib
import os
import os.path as osp
import re
import unicodedata
from collections import Counter

from mmext.datasets.region_features import TSV_FIELDS
from mmext.dedup.textio import atomic_write, escape_path, unescape_path

__all__ = [
    'MAX_ID_BYTES', 'assign_image_ids', 'done_tsv_ids', 'write_image_ids',
    'write_failed'
]

#: Longest id in UTF-8 bytes: ``<id>.npz.tmp<pid>.npz`` must fit a
#: 255-byte file name.
MAX_ID_BYTES = 200


def _fold(name):
    """What a case-insensitive (and Unicode-normalising) file system
    compares."""
    return unicodedata.normalize('NFC', name).casefold()


def _digest(text):
    return hashlib.sha1(os.fsencode(text)).hexdigest()[:8]


def _fit(image_id, source):
    """``image_id``, or its head + ``~`` + a digest when too long."""
    raw = os.fsencode(image_id)
    if len(raw) <= MAX_ID_BYTES:
        return image_id
    head = raw[:MAX_ID_BYTES - 9].decode('utf-8', 'ignore')
    return f'{os.fsdecode(head.encode())}~{_digest(source)}'


def assign_image_ids(images):
    """A unique output id for every image, the same on every rank.

    Per image the first candidate that no other image shares (compared
    ignoring case and Unicode normalisation) is taken: the file stem, the
    file name, the file name + ``~`` + 8 hex digits of SHA-1 of the name,
    then of the whole path. Ids depend only on the set of names, not on
    their order.

    Args:
        images (Sequence[str]): Image paths.

    Returns:
        list[str]: Ids in input order.

    Raises:
        ValueError: A path is listed twice.

    Example:
        >>> assign_image_ids(['d/same.jpg', 'd/same.png', 'd/x.jpg'])
        ['same.jpg', 'same.png', 'x']
    """
    images = [os.fspath(p) for p in images]
    twice = [p for p, n in Counter(images).items() if n > 1]
    if twice:
        raise ValueError(f'image {escape_path(twice[0])} is listed twice; '
                         'pass each image once')
    names = [osp.basename(p) for p in images]
    levels = (
        [osp.splitext(n)[0] or n for n in names],
        names,
        [f'{n}~{_digest(n)}' for n in names],
        [f'{n}~{_digest(p)}' for n, p in zip(names, images)],
    )
    ids, taken, pending = [None] * len(images), set(), range(len(images))
    for level in levels:
        cands = {i: _fit(level[i], images[i]) for i in pending}
        counts = Counter(_fold(c) for c in cands.values())
        for i, cand in cands.items():
            if counts[_fold(cand)] == 1 and _fold(cand) not in taken:
                ids[i] = cand
        taken.update(_fold(ids[i]) for i in cands if ids[i] is not None)
        pending = [i for i in pending if ids[i] is None]
    if pending:  # a SHA-1 prefix clash of two paths: practically never
        raise ValueError(f'no unique id for {escape_path(images[pending[0]])}')
    return ids


_B64 = re.compile(r'[A-Za-z0-9+/]*={0,2}')


def _tsv_line_problem(line):
    """Why a TSV line is not a row this module wrote, or None."""
    try:
        text = line.decode('utf-8')
    except UnicodeDecodeError as e:
        return f'not UTF-8 (byte {e.start})'
    fields = text.rstrip('\r\n').split('\t')
    if len(fields) != len(TSV_FIELDS):
        return f'{len(fields)} tab-separated fields, not {len(TSV_FIELDS)}'
    image_id, w, h, n, boxes, feats = fields
    if not image_id or image_id.startswith('"'):
        return 'empty or quoted image id'
    try:
        unescape_path(image_id)
        w, h, n = int(w), int(h), int(n)
    except ValueError as e:
        return f'bad image id or size ({e})'
    if min(w, h) <= 0 or n < 0:
        return f'image size {w}x{h} with {n} boxes'
    if len(boxes) != 4 * -(-n * 16 // 3) or len(feats) % 4 or not (
            _B64.fullmatch(boxes) and _B64.fullmatch(feats)):
        return f'boxes / features are not base64 of {n} regions'
    return None


def done_tsv_ids(path):
    """TSV ids (as written) with a complete row.

    A torn last line (a killed run) is cut off; any other damaged line is
    moved to ``<path>.damaged`` (with its line number) so the TSV stays
    readable, and its image counts as not done.

    Returns:
        tuple[set[str], list[tuple[int, str]]]: Done ids and ``(line,
        reason)`` of every damaged line moved.
    """
    if not osp.isfile(path):
        return set(), []
    with open(path, 'rb') as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        end = size
        while end > 0:  # find the end of the last complete line
            f.seek(max(0, end - 65536))
            chunk = f.read(end - max(0, end - 65536))
            cut = chunk.rfind(b'\n')
            if cut >= 0:
                end = end - len(chunk) + cut + 1
                break
            end = max(0, end - 65536)
    if end < size:  # interrupted mid-row: drop the partial row
        with open(path, 'r+b') as f:
            f.truncate(end)
    done, damaged = set(), []
    with open(path, 'rb') as f:
        for number, line in enumerate(f, 1):
            problem = _tsv_line_problem(line)
            if problem is None:
                done.add(line.split(b'\t', 1)[0].decode('utf-8'))
            else:
                damaged.append((number, problem))
    if damaged:
        _move_damaged_lines(path, damaged)
    return done, damaged


def _move_damaged_lines(path, damaged):
    """Rewrite ``path`` without the ``damaged`` lines; append them to
    ``<path>.damaged`` as ``# line <n>: <reason>`` then the raw line."""
    bad = dict(damaged)
    with open(path, 'rb') as src, open(path + '.damaged', 'ab') as junk, \
            atomic_write(path, 'wb') as dst:
        for number, line in enumerate(src, 1):
            if number in bad:
                junk.write(f'# line {number}: {bad[number]}\n'.encode())
                junk.write(line if line.endswith(b'\n') else line + b'\n')
            else:
                dst.write(line)


def write_image_ids(path, images, ids):
    """``image_ids.csv``: escaped id, escaped image path (atomic)."""
    with atomic_write(path, newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(['image_id', 'image_path'])
        for image, image_id in zip(images, ids):
            writer.writerow([escape_path(image_id), escape_path(image)])


def write_failed(path, failed):
    """``failed_rank<r>.txt``: escaped path, tab, escaped reason per line
    (atomic; written also when empty, so a finished rank leaves one)."""
    with atomic_write(path, encoding='utf-8', newline='\n') as f:
        for image, reason in failed:
            f.write(f'{escape_path(image)}\t{escape_path(reason)}\n')
