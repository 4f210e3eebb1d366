# Copyright (c) mmext contributors. All rights reserved.
"""Perceptual-hash duplicate search, for train / held-out leakage checks.

``hash_images`` hashes files (imagehash-exact, flip-aware, parallel, cached;
``decode='fast'`` decodes JPEGs downscaled, :mod:`mmext.dedup.decode`);
``find_cross_set_duplicates`` / ``find_within_set_duplicates`` return every
pair within a Hamming threshold; ``mmext.dedup.leakage_report`` writes the
evidence (CSV, JSON, HTML, contact sheet) and the exclude file the
Flowers-102 no-leak configs read, all or none; ``mmext.dedup.textio``
escapes any POSIX file name in them and reads / writes the exclude file;
``find_leakage``
(:mod:`mmext.dedup.leakage`) runs the whole check; with ``stage='geometric'``
it adds local features + RANSAC (:mod:`mmext.dedup.geometric`:
``extract_features``, ``find_geometric_pairs``) for crops, rotations, borders
and overlaps.
CLI: ``tools/dedup/find_leakage.py``.
"""
from .decode import DECODE_MODES
from .geometric import DEFAULT_RULE, GeometricPair, find_geometric_pairs
from .geometric_features import extract_features
from .hashing import (METHODS, MIN_STD, HashResult, SkipImage, hash_images,
                      hash_pil_image, load_image, pack_bits)
from .hexcodec import hash_to_hex, hex_to_words
from .leakage import LeakageCheckError, find_leakage
from .search import (DEFAULT_THRESHOLD, DuplicatePair, default_threshold,
                     find_cross_set_duplicates, find_within_set_duplicates,
                     hamming_distances)
from .textio import (escape_path, read_exclude_file, unescape_path,
                     write_exclude_file)

__all__ = [
    'METHODS', 'DECODE_MODES', 'MIN_STD', 'HashResult', 'SkipImage',
    'hash_images', 'hash_pil_image', 'hash_to_hex', 'hex_to_words',
    'load_image', 'pack_bits', 'DEFAULT_THRESHOLD', 'DuplicatePair',
    'default_threshold', 'find_cross_set_duplicates',
    'find_within_set_duplicates', 'hamming_distances', 'escape_path',
    'unescape_path', 'read_exclude_file', 'write_exclude_file', 'find_leakage',
    'LeakageCheckError', 'DEFAULT_RULE', 'GeometricPair',
    'find_geometric_pairs', 'extract_features'
]
