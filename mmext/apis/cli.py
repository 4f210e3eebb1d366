# Copyright (c) mmext contributors. All rights reserved.
"""One-line errors for the command-line tools.

mmengine's tools let every exception end in a traceback, so a missing file
or a refused checkpoint looks like a crash. :func:`run_cli` runs a tool's
``main`` and prints the errors mmext raises for bad input -- the pre-run
check's :class:`~mmext.apis.ConfigError`, missing files, refused or corrupt
checkpoints, unreadable input files and data set records -- as their
message lines, then exits 1; ``--debug`` (:func:`add_debug_argument`) shows
the traceback instead. Any other exception keeps its traceback: it is a bug,
not a user error.
"""
import sys

from mmext.utils.checkpoint import (CorruptCheckpointError,
                                    UnsafeCheckpointError)
from mmext.utils.config import ConfigError
from mmext.utils.fileio import InputFileError

__all__ = ['USER_ERRORS', 'add_debug_argument', 'format_error', 'run_cli']

#: what a user can fix (the data sets' RecordError is an InputFileError;
#: CheckpointBoundError / CheckpointMismatchError subclass the checkpoint
#: errors)
USER_ERRORS = (ConfigError, FileNotFoundError, InputFileError,
               UnsafeCheckpointError, CorruptCheckpointError)


def add_debug_argument(parser):
    """Add ``--debug`` (tracebacks instead of one-line errors)."""
    parser.add_argument(
        '--debug',
        action='store_true',
        help='show the traceback of a config / file / checkpoint error '
        'instead of its one-line message')
    return parser


def format_error(exc, prog=None):
    """The message of ``exc``, each line prefixed with ``prog: ``."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    lines = lines or [type(exc).__name__]
    return '\n'.join(f'{prog}: {line}' if prog else line for line in lines)


def run_cli(main, *args, prog=None, debug=False, **kwargs):
    """``main(*args, **kwargs)``; a :data:`USER_ERRORS` error becomes its
    message lines on stderr and exit status 1 (unless ``debug``).

    Args:
        main (callable): The tool's work.
        prog (str, optional): Prefix of every message line
            (``'tools/train.py'``).
        debug (bool): Re-raise (the traceback is shown).

    Returns:
        What ``main`` returns.
    """
    try:
        return main(*args, **kwargs)
    except USER_ERRORS as e:
        if debug:
            raise
        sys.exit(format_error(e, prog))
