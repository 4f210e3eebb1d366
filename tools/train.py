# Copyright (c) mmext contributors. All rights reserved.
"""Train a model from an mmext config (same arguments as mmpretrain's).

The arguments, their merge into the config and the run are
:mod:`mmext.apis.tool_runs` (``build_train_parser``, ``merge_train_args``,
``run_train``), so ``make demo`` trains exactly as this tool does, in one
process.
"""
import os

from mmext.apis.cli import run_cli
from mmext.apis.tool_runs import build_train_parser
from mmext.apis.tool_runs import merge_train_args as merge_args  # noqa: F401
from mmext.apis.tool_runs import run_train as run


def parse_args(argv=None):
    args = build_train_parser().parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    run_cli(run, args, prog='tools/train.py', debug=args.debug)


if __name__ == '__main__':
    main()
