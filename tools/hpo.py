# Copyright (c) mmext contributors. All rights reserved.
"""Optuna hyper-parameter / architecture search over an mmext config.

Each trial is a full mmengine training run in ``WORK_DIR/trial_{n}``; the
validation metric is reported every epoch and poor trials are pruned. The
study lives in ``--storage`` (default ``sqlite:///WORK_DIR/study.db``), so a
second call resumes it and several processes can share it.

Before the first trial the metric is checked against the config's
val_evaluator and the space file's types, so a typo is one line (exit 1),
not a study of failed trials. A resumed study marks trials whose process
died FAIL. A study whose trials all failed exits 1 with one line on why.
Problems are one line; ``--debug`` shows tracebacks.

The console shows where the study stands (new, or resumed with its
finished / failed / running trials), one line per trial (number, params,
value or PRUNED / FAIL with its reason, best so far) and the result. Each
trial's mmengine log (environment, config, iterations) is in
``WORK_DIR/trial_N/train.log`` (``--verbose`` prints it too).

Example:
    python tools/hpo.py configs/flowers/resnet18_1xb32-ft_flowers17.py \
        --space configs/hpo/resnet18_flowers17_space.py --n-trials 30 \
        --metric accuracy/top1 --pruner median
"""
import argparse
import functools
import os.path as osp
import sys

from mmengine.config import DictAction

from mmext.apis import ConfigError
from mmext.hpo import search
from mmext.hpo.console import summary_lines
from mmext.hpo.study import PRUNERS, SAMPLERS
from mmext.hpo.study_report import failure_summary


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='mmext config to tune')
    p.add_argument('--space', required=True, help='search-space file')
    p.add_argument(
        '--work-dir',
        help='trials and reports (default: '
        'work_dirs/hpo/<config>-<space>)')
    p.add_argument('--study-name', help='default: <config>-<space>')
    p.add_argument(
        '--storage',
        help='sqlite:///x.db (default in the work dir), any Optuna RDB URL '
        '(postgresql://..., mysql://...) or a journal file '
        '(journal:PATH or *.log) shared by several processes')
    p.add_argument(
        '--n-trials',
        type=int,
        default=20,
        help='finished trials the study should hold, counting '
        'earlier runs and other workers (default 20)')
    p.add_argument('--timeout', type=float, help='seconds for this process')
    p.add_argument(
        '--metric',
        nargs='+',
        help='validation metric key(s); several = '
        'multi-objective (default: the space file\'s `metric`)')
    p.add_argument(
        '--direction',
        nargs='+',
        choices=['maximize', 'minimize'],
        help='one, or one per metric (default maximize)')
    p.add_argument('--pruner', choices=PRUNERS, default='median')
    p.add_argument(
        '--pruner-warmup',
        type=int,
        default=0,
        help='median: epochs before a trial may be pruned')
    p.add_argument(
        '--startup-trials',
        type=int,
        default=2,
        help='median: trials that are never pruned')
    p.add_argument(
        '--min-resource',
        type=int,
        default=1,
        help='hyperband: epochs every trial gets')
    p.add_argument('--sampler', choices=SAMPLERS, default='tpe')
    p.add_argument('--seed', type=int, help='sampler seed')
    p.add_argument(
        '--reduce',
        choices=['last', 'best'],
        default='last',
        help='score a trial by its last or best validation')
    p.add_argument(
        '--report-only',
        action='store_true',
        help='write reports of the stored study, run nothing')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='config overrides for every trial')
    p.add_argument(
        '--debug',
        action='store_true',
        help='tracebacks instead of one-line errors (failed trials always '
        'keep theirs in trial_N/traceback.txt)')
    p.add_argument(
        '--verbose',
        action='store_true',
        help='print each trial\'s mmengine log (environment, config, '
        'iterations) on the console too; it is always in '
        'trial_N/train.log')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    stem = (f'{osp.splitext(osp.basename(args.config))[0]}-'
            f'{osp.splitext(osp.basename(args.space))[0]}')
    if args.pruner == 'median':
        pk = dict(
            warmup_steps=args.pruner_warmup,
            startup_trials=args.startup_trials)
    elif args.pruner == 'hyperband':
        pk = dict(min_resource=args.min_resource)
    else:
        pk = {}
    work_dir = args.work_dir or osp.join('work_dirs', 'hpo', stem)
    try:
        summary = search(
            args.config,
            args.space,
            work_dir,
            study_name=args.study_name,
            storage=args.storage,
            n_trials=args.n_trials,
            timeout=args.timeout,
            metrics=args.metric,
            directions=args.direction,
            pruner=args.pruner,
            pruner_kwargs=pk,
            sampler=args.sampler,
            seed=args.seed,
            reduce=args.reduce,
            cfg_options=args.cfg_options,
            report_only=args.report_only,
            debug=args.debug,
            echo=functools.partial(print, flush=True),
            console_log=args.verbose)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        if args.debug:
            raise
        sys.exit(f'hpo: {e}')
    for line in summary_lines(summary, work_dir):
        print(line)
    states = summary['states']
    if states.get('FAIL') and not (states.get('COMPLETE')
                                   or states.get('PRUNED')):
        rows = [
            dict(state='FAIL', fail_reason=f['reason'])
            for f in summary['failed']
        ]
        sys.exit(f"hpo: study '{summary['study_name']}': all "
                 f'{failure_summary(rows)} (trials.csv in {work_dir})')


if __name__ == '__main__':
    main()
