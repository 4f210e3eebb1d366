# Copyright (c) mmext contributors. All rights reserved.
"""Write :func:`~mmext.analysis.compare_runs` tables as Markdown, CSV and
JSON (``compare.md``, ``runs_<task>.csv``, ``groups_<task>.csv``,
``compare.json``)."""
import csv
import json
import os
import os.path as osp
import re

from .compare import fmt

__all__ = ['header', 'slug', 'markdown', 'write_tables', 'mean_std']


def slug(text):
    """A file-name-safe form of a task name."""
    return re.sub(r'[^A-Za-z0-9]+', '_', text).strip('_').lower() or 'runs'


def header(column, table):
    """The displayed name of a column."""
    m = table.metric
    names = dict(
        best=f'best {m}',
        best_step='best at',
        final=f'final {m}',
        final_step='final at',
        step_unit='unit',
        params_total='params',
        params_trainable='trainable',
        flops='FLOPs',
        sec_per_iter='s/iter',
        peak_memory_mb='peak mem (MB)',
        memory_source='mem source',
        wall_time_s='wall time (s)',
        runs='runs',
        best_mean=f'best {m}',
        final_mean=f'final {m}',
        test_mean=f'test {m}')
    if column in names:
        return names[column]
    if column.startswith('test:'):
        return 'test ' + column[5:]
    return column


def mean_std(mean, std):
    if mean is None:
        return ''
    return fmt(mean) + ('' if std is None else f' ± {fmt(std)}')


def _cells(row, columns):
    return [
        fmt(row.get(c)) if not isinstance(row.get(c), list) else ', '.join(
            map(str, row[c])) for c in columns
    ]


def shown_columns(table):
    """Columns with at least one value (no all-empty FLOPs / error)."""
    return [
        c for c in table.columns
        if c == 'run' or any(r.get(c) not in (None, '') for r in table.rows)
    ]


def group_cells(table, g):
    """Displayed ``(headers, cells)`` of a group row."""
    heads = [header(k, table) for k in table.group_by] + ['runs']
    cells = _cells(g, table.group_by) + [str(g['runs'])]
    for name in ('best', 'final', 'test'):
        if any(x[f'{name}_mean'] is not None for x in table.groups):
            heads.append(header(f'{name}_mean', table) + ' (mean ± std)')
            cells.append(mean_std(g[f'{name}_mean'], g[f'{name}_std']))
    return heads, cells


def _md_escape(text):
    return str(text).replace('|', '\\|').replace('\n', ' ')


def _md_table(heads, rows):
    out = ['| ' + ' | '.join(map(_md_escape, heads)) + ' |']
    out.append('|' + '|'.join('---' for _ in heads) + '|')
    out += ['| ' + ' | '.join(map(_md_escape, r)) + ' |' for r in rows]
    return out


def markdown(tables):
    """All tables as one Markdown document."""
    lines = ['# Run comparison', '']
    for t in tables:
        better = 'higher' if t.mode == 'max' else 'lower'
        lines += [
            f'## {t.task}', '', f'{len(t.rows)} runs; metric `{t.metric}` '
            f'({better} is better).', ''
        ]
        lines += [f'- {n}' for n in t.notes]
        cols = shown_columns(t)
        lines += _md_table([header(c, t) for c in cols],
                           [_cells(r, cols) for r in t.rows])
        lines.append('')
        if t.groups:
            lines += [f'### Groups by {", ".join(t.group_by) or "(none)"}', '']
            built = [group_cells(t, g) for g in t.groups]
            lines += _md_table(built[0][0], [c for _, c in built])
            lines.append('')
    return '\n'.join(lines)


def _csv(path, columns, rows):
    with open(path, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in rows:
            w.writerow([
                json.dumps(r.get(c)) if isinstance(r.get(c), (list, dict)) else
                ('' if r.get(c) is None else r.get(c)) for c in columns
            ])


def write_tables(tables, out_dir):
    """``compare.md``, ``compare.json`` and two CSV files per table.

    Returns:
        dict: Written file paths by kind.
    """
    os.makedirs(out_dir, exist_ok=True)
    files = dict(
        markdown=osp.join(out_dir, 'compare.md'),
        json=osp.join(out_dir, 'compare.json'),
        csv=[])
    with open(files['markdown'], 'w') as f:
        f.write(markdown(tables))
    for t in tables:
        runs_csv = osp.join(out_dir, f'runs_{slug(t.task)}.csv')
        groups_csv = osp.join(out_dir, f'groups_{slug(t.task)}.csv')
        _csv(runs_csv, t.columns + ['work_dir', 'config'], t.rows)
        _csv(groups_csv, t.group_columns, t.groups)
        files['csv'] += [runs_csv, groups_csv]
    data = [
        dict(
            task=t.task,
            metric=t.metric,
            mode=t.mode,
            columns=t.columns,
            rows=t.rows,
            group_by=t.group_by,
            groups=t.groups,
            notes=t.notes +
            [f'{r.name}: {n}' for r in t.runs for n in r.notes])
        for t in tables
    ]
    with open(files['json'], 'w') as f:
        json.dump(dict(tables=data), f, indent=1, default=str)
    return files
