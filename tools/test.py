# Copyright (c) mmext contributors. All rights reserved.
"""Test a checkpoint with an mmext config (same arguments as mmpretrain's).

The arguments, their merge into the config and the run are
:mod:`mmext.apis.tool_runs` (``build_test_parser``, ``merge_test_args``,
``run_test``), so ``make demo`` tests exactly as this tool does, in one
process.
"""
import os

from mmext.apis.cli import run_cli
from mmext.apis.tool_runs import build_test_parser
from mmext.apis.tool_runs import merge_test_args as merge_args  # noqa: F401
from mmext.apis.tool_runs import run_test as run


def parse_args(argv=None):
    args = build_test_parser().parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    # a bad config, checkpoint or input file is one line, not a traceback
    run_cli(run, args, prog='tools/test.py', debug=args.debug)


if __name__ == '__main__':
    main()
