# Copyright (c) mmext contributors. All rights reserved.
"""A persistent hash cache, so re-running a leakage check is near free.

SQLite (standard library, safe to read while another run appends, no
pickle). A row is valid only while the file's size and mtime are unchanged
and the method, hash size, decode mode and library versions match;
anything else is a miss and is re-hashed. The decode mode is part of the
``versions`` key column (``...;decode=fast,min_side=64``), so exact and
fast hashes of one file never answer for each other, and exact rows keep
the key they had before the fast mode existed (old caches stay valid).
Skip reasons are cached too: a 0-byte or flat file stays so until it
changes. Paths are stored escaped
(:func:`mmext.dedup.textio.escape_path`): SQLite text must be valid UTF-8,
which a POSIX file name need not be.
"""
import os
import os.path as osp
import sqlite3

from .hexcodec import hash_to_hex, hex_to_words
from .textio import escape_path

__all__ = ['HashCache']

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hashes (
    path TEXT NOT NULL, method TEXT NOT NULL, hash_size INTEGER NOT NULL,
    versions TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    hash TEXT, flipped TEXT, reason TEXT,
    PRIMARY KEY (path, method, hash_size, versions))
"""


class HashCache:
    """Hashes of files keyed by path + size + mtime + method + hash size
    + decode mode.

    Args:
        cache_file (str): SQLite file, created with its folder if missing.
        method (str): Hash method of the rows read and written.
        hash_size (int): imagehash ``hash_size``.
        num_bits (int): Bits per hash (to unpack the stored hex).
        versions (str): Library versions the hashes depend on.
        decode (str, optional): Non-exact decode mode and its settings
            (e.g. 'fast,min_side=64'). Defaults to None (exact decode).
    """

    def __init__(self,
                 cache_file,
                 method,
                 hash_size,
                 num_bits,
                 versions,
                 decode=None):
        folder = osp.dirname(osp.abspath(cache_file))
        os.makedirs(folder, exist_ok=True)
        try:
            self.db = sqlite3.connect(cache_file, timeout=30)
            self.db.execute(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise ValueError(f'hash cache {cache_file} is not a readable '
                             f'SQLite file ({e}); delete it or pass another '
                             '--cache path') from e
        if decode is not None:
            versions = f'{versions};decode={decode}'
        self.key = (method, int(hash_size), versions)
        self.num_bits = num_bits

    def get(self, path, size, mtime_ns, need_flip=True):
        """``(hash, flipped, reason)`` for an unchanged file, else None."""
        row = self.db.execute(
            'SELECT size, mtime_ns, hash, flipped, reason FROM hashes '
            'WHERE path=? AND method=? AND hash_size=? AND versions=?',
            (escape_path(path), *self.key)).fetchone()
        if row is None or row[0] != size or row[1] != mtime_ns:
            return None
        _, _, hash_hex, flipped_hex, reason = row
        if reason is not None:
            return None, None, reason
        if need_flip and flipped_hex is None:
            return None  # hashed earlier with flip=False
        words = hex_to_words(hash_hex, self.num_bits)
        flipped = (
            hex_to_words(flipped_hex, self.num_bits) if need_flip else None)
        return words, flipped, None

    def put_many(self, rows):
        """Store ``(path, size, mtime_ns, hash, flipped, reason)`` rows."""
        if not rows:
            return
        records = []
        for path, size, mtime_ns, words, flipped, reason in rows:
            records.append(
                (escape_path(path), *self.key, size, mtime_ns,
                 None if words is None else hash_to_hex(words, self.num_bits),
                 None if flipped is None else hash_to_hex(
                     flipped, self.num_bits), reason))
        with self.db:
            self.db.executemany(
                'INSERT OR REPLACE INTO hashes VALUES (?,?,?,?,?,?,?,?,?)',
                records)

    def close(self):
        self.db.close()
