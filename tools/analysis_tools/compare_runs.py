# Copyright (c) mmext contributors. All rights reserved.
"""Compare training runs and HPO studies: one table, plots, one HTML page.

Example:
    python tools/analysis_tools/compare_runs.py work_dirs/flowers_* \\
        --metric accuracy/top1 \\
        --group-by model.backbone.type,model.backbone.frozen_stages \\
        --out work_dirs/compare
"""
import argparse
import os.path as osp
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Compare mmengine work dirs and tools/hpo.py studies')
    p.add_argument(
        'runs',
        nargs='+',
        help='work dirs (resumed parts are joined) and HPO '
        'study folders (each trial is a run)')
    p.add_argument(
        '--metric',
        help='validation metric of the best / final '
        'columns (default: the first one the runs log)')
    p.add_argument(
        '--mode',
        choices=['auto', 'max', 'min'],
        default='auto',
        help='higher or lower is better (auto: lower for '
        'losses and errors)')
    p.add_argument(
        '--group-by',
        help='comma-separated config keys of the '
        'groups (param:<name> for HPO parameters); default: every '
        'differing key except the seed')
    p.add_argument(
        '--out',
        default='work_dirs/compare',
        help='output folder (default: %(default)s)')
    p.add_argument(
        '--no-flops',
        action='store_true',
        help='count parameters only (FLOPs build a forward pass)')
    p.add_argument(
        '--no-complexity',
        action='store_true',
        help='neither parameters nor FLOPs (no model is built)')
    p.add_argument('--no-plots', action='store_true')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmext.analysis.compare import compare_runs
    from mmext.analysis.compare_write import write_tables
    from mmext.analysis.runs import RunError, discover_runs
    try:
        runs = discover_runs(args.runs)
    except RunError as exc:
        sys.exit(f'compare_runs: {exc}')
    group_by = None
    if args.group_by is not None:
        group_by = [k.strip() for k in args.group_by.split(',') if k.strip()]
    complexity = (False if args.no_complexity else
                  'params' if args.no_flops else True)
    tables = compare_runs(runs, args.metric, group_by, args.mode, complexity)
    files = write_tables(tables, args.out)
    plots = {}
    if not args.no_plots:
        from mmext.visualization.compare_page import write_plots
        plots = write_plots(tables, osp.join(args.out, 'plots'))
    from mmext.visualization.compare_page import write_html
    page = write_html(tables, plots, args.out)
    for t in tables:
        states = {}
        for r in t.rows:
            states[r['status']] = states.get(r['status'], 0) + 1
        print(f'{t.task}: {len(t.rows)} runs '
              f'({", ".join(f"{n} {s}" for s, n in states.items())}), '
              f'{len(t.groups)} groups, metric {t.metric}')
    print(f'table: {files["markdown"]} (CSV, JSON beside it)')
    print(f'page:  {page}')


if __name__ == '__main__':
    main()
