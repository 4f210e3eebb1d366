# Copyright (c) mmext contributors. All rights reserved.
"""Plots and one HTML page of a run comparison.

mmpretrain's ``analyze_logs plot_curve`` draws one ``scalars.json`` (the
last part of a resumed run) per call. Here, per table of
:func:`mmext.analysis.compare_runs`: training loss and every validation
metric of all runs on one figure each (resumed parts joined), the best
metric per group as bars with each run as a dot (the seed spread), and the
metric against trainable parameters and FLOPs. ``index.html`` holds the
tables (click a header to sort; ``?sort=<table id>:<column>:<asc|desc>``
does the same click on load, for scripted checks), the plots and links to
every run's config and logs.
"""
import html
import os
import os.path as osp

from mmext.analysis.compare_write import (group_cells, header, shown_columns,
                                          slug)

__all__ = [
    'plot_curves', 'plot_groups', 'plot_tradeoff', 'write_plots', 'write_html'
]

FIGSIZE = (10, 7.5)  # inches at DPI: >= 800 px on both sides once cropped
DPI = 120


def _short(text, width=48):
    text = str(text)
    if len(text) <= width:
        return text
    half = (width - 1) // 2
    return text[:half] + '…' + text[-half:]


def _figure(**kwargs):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt.subplots(figsize=FIGSIZE, **kwargs)


def _save(fig, path):
    import matplotlib.pyplot as plt

    # 'tight' grows the canvas around outside legends and long tick labels
    fig.savefig(path, dpi=DPI, bbox_inches='tight', pad_inches=0.2)
    plt.close(fig)
    return path


def _legend(ax):
    if ax.get_legend_handles_labels()[0]:
        ax.legend(
            loc='upper left',
            bbox_to_anchor=(1.01, 1.0),
            fontsize='small',
            borderaxespad=0)


def plot_curves(table, out_dir):
    """One PNG per logged quantity: ``loss`` against the iteration and
    each validation metric against its step, all runs on one figure."""
    paths = []
    keys = ['loss']
    for run in table.runs:
        for row in run.val:
            keys += [
                k for k in row if k not in keys and k not in (
                    'step', 'time', 'data_time', 'epoch',
                    'iter') and isinstance(row[k], (int, float))
            ]
    for key in keys:
        fig, ax = _figure()
        drawn = 0
        for run in table.runs:
            rows = run.train if key == 'loss' else run.val
            pts = [(r['step'], r[key]) for r in rows
                   if isinstance(r.get(key), (int, float))]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(
                    xs,
                    ys,
                    marker='' if len(pts) > 30 else 'o',
                    ms=3,
                    label=_short(run.name))
                drawn += 1
        if not drawn:
            import matplotlib.pyplot as plt
            plt.close(fig)
            continue
        unit = 'iteration' if key == 'loss' else ('epoch' if all(
            r.by_epoch for r in table.runs) else 'step (epoch or iteration)')
        ax.set_xlabel(unit)
        ax.set_ylabel(('train ' if key == 'loss' else 'val ') + key)
        ax.set_title(f'{table.task}: {"train" if key == "loss" else "val"} '
                     f'{key}')
        ax.grid(alpha=0.3)
        _legend(ax)
        name = f'curve_{slug(table.task)}_{slug(key)}.png'
        paths.append(_save(fig, osp.join(out_dir, name)))
    return paths


def _group_label(table, g):
    if not table.group_by:
        return 'all runs'
    return ', '.join(f'{k.split(".")[-1]}={g.get(k)}' for k in table.group_by)


def plot_groups(table, out_dir):
    """Best metric per group: mean as a bar, std as the error bar, every
    run as a dot."""
    groups = [g for g in table.groups if g['best_mean'] is not None]
    if not groups:
        return None
    by_run = {r['run']: r['best'] for r in table.rows}
    fig, ax = _figure()
    ys = range(len(groups))
    ax.barh(
        list(ys), [g['best_mean'] for g in groups],
        xerr=[g['best_std'] or 0 for g in groups],
        color='#9ecae1',
        edgecolor='#3182bd',
        capsize=4,
        label='mean ± std')
    for y, g in zip(ys, groups):
        vals = [by_run[m] for m in g['members'] if by_run[m] is not None]
        ax.plot(
            vals, [y] * len(vals),
            'o',
            color='#de2d26',
            ms=5,
            label='runs (seeds)' if y == 0 else None)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([
        _short(_group_label(table, g), 60) + f' (n={g["runs"]})'
        for g in groups
    ])
    ax.invert_yaxis()
    ax.set_xlabel(f'best val {table.metric}')
    ax.set_title(f'{table.task}: best {table.metric} per group')
    ax.grid(axis='x', alpha=0.3)
    _legend(ax)
    return _save(fig, osp.join(out_dir, f'groups_{slug(table.task)}.png'))


def plot_tradeoff(table, out_dir):
    """Best metric against trainable parameters and against FLOPs (log
    scale), one dot per run."""
    axes_data = [(c, lbl)
                 for c, lbl in (('params_trainable', 'trainable parameters'),
                                ('flops', 'FLOPs per sample')) if any(
                                    r.get(c) and r.get('best') is not None
                                    for r in table.rows)]
    if not axes_data:
        return None
    fig, axes = _figure(ncols=len(axes_data), squeeze=False)
    for ax, (col, label) in zip(axes[0], axes_data):
        for r in table.rows:
            if r.get(col) and r.get('best') is not None:
                ax.scatter(r[col], r['best'], s=30, label=_short(r['run']))
        ax.set_xscale('log')
        ax.set_xlabel(label)
        ax.set_ylabel(f'best val {table.metric}')
        ax.grid(alpha=0.3)
    axes[0][0].set_title(f'{table.task}: {table.metric} vs cost', loc='left')
    _legend(axes[0][-1])
    return _save(fig, osp.join(out_dir, f'tradeoff_{slug(table.task)}.png'))


def write_plots(tables, out_dir):
    """All plots of all tables in ``out_dir``; ``{task: [png, ...]}``."""
    os.makedirs(out_dir, exist_ok=True)
    out = {}
    for t in tables:
        pngs = plot_curves(t, out_dir)
        pngs += [
            p for p in (plot_groups(t, out_dir), plot_tradeoff(t, out_dir))
            if p
        ]
        out[t.task] = pngs
    return out


_STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
td.text,th{text-align:left}
th{background:#eef;cursor:pointer;white-space:nowrap}
th.asc::after{content:' \\25B2'} th.desc::after{content:' \\25BC'}
tr.crashed td{background:#fee} tr.stopped td{background:#ffd}
img{max-width:100%;border:1px solid #ddd;margin:4px 0}
"""

# sort by a header click; ?sort=<table>:<column>:<asc|desc> clicks on load
# (once for asc, twice for desc) and marks <body data-sorted=...>
_SCRIPT = """
function sortBy(th){
  const table=th.closest('table'), body=table.tBodies[0];
  const idx=[...th.parentNode.children].indexOf(th);
  const dir=th.classList.contains('asc')?'desc':'asc';
  [...th.parentNode.children].forEach(h=>h.classList.remove('asc','desc'));
  th.classList.add(dir);
  const key=td=>{const v=td.dataset.value;
    return v===undefined||v===''?null:(isNaN(+v)?v:+v);};
  const rows=[...body.rows];
  rows.sort((a,b)=>{const x=key(a.cells[idx]),y=key(b.cells[idx]);
    if(x===null) return 1; if(y===null) return -1;
    const c=(typeof x==='number'&&typeof y==='number')?x-y:
      String(x).localeCompare(String(y));
    return dir==='asc'?c:-c;});
  rows.forEach(r=>body.appendChild(r));
}
document.querySelectorAll('th').forEach(
  th=>th.addEventListener('click',()=>sortBy(th)));
const want=new URLSearchParams(location.search).get('sort');
if(want){const [id,col,dir]=want.split(':');
  const th=document.querySelector(`#${id} th[data-col="${col}"]`);
  if(th){th.click(); if(dir==='desc') th.click();
    document.body.dataset.sorted=want;}}
"""


def _td(value, text, cls=''):
    raw = '' if value is None else value
    if isinstance(raw, (list, dict)):
        raw = str(raw)
    return (f'<td class="{cls}" data-value="{html.escape(str(raw))}">'
            f'{text}</td>')


def _links(row, out_dir):
    links = []
    if row.get('config'):
        links.append(('config', row['config']))
    for i, log in enumerate(row.get('logs') or [], 1):
        links.append((f'log {i}', log))
    return ' '.join(
        f'<a href="{html.escape(osp.relpath(p, out_dir))}">{name}</a>'
        for name, p in links)


def _runs_table(table, tid, out_dir):
    from mmext.analysis.compare import fmt
    cols = shown_columns(table)
    out = [f'<table id="{tid}"><thead><tr>']
    out += [
        f'<th data-col="{html.escape(c)}">{html.escape(header(c, table))}'
        '</th>' for c in cols
    ]
    out.append('<th data-col="files">files</th></tr></thead><tbody>')
    for r in table.rows:
        out.append(f'<tr class="{html.escape(str(r.get("status")))}">')
        for c in cols:
            v = r.get(c)
            num = isinstance(v, (int, float)) and not isinstance(v, bool)
            out.append(
                _td(
                    v,
                    html.escape(
                        fmt(v) if not isinstance(v, list) else ', '.
                        join(map(str, v))), '' if num else 'text'))
        out.append(f'<td class="text">{_links(r, out_dir)}</td></tr>')
    out.append('</tbody></table>')
    return '\n'.join(out)


def _groups_table(table, tid):
    if not table.groups:
        return ''
    built = [group_cells(table, g) for g in table.groups]
    means = ['best_mean', 'final_mean', 'test_mean']
    out = [f'<table id="{tid}"><thead><tr>']
    out += [
        f'<th data-col="{i}">{html.escape(h)}</th>'
        for i, h in enumerate(built[0][0])
    ]
    out.append('</tr></thead><tbody>')
    nkeys = len(table.group_by) + 1
    for g, (_, cells) in zip(table.groups, built):
        values = [g.get(k) for k in table.group_by] + [g['runs']] + [
            g[m] for m in means if any(x[m] is not None for x in table.groups)
        ]
        out.append('<tr>' + ''.join(
            _td(v, html.escape(c), 'text' if i < nkeys - 1 else '')
            for i, (v, c) in enumerate(zip(values, cells))) + '</tr>')
    out.append('</tbody></table>')
    return '\n'.join(out)


def write_html(tables, plots, out_dir, title='Run comparison'):
    """``out_dir/index.html``: per table the runs, the groups and the
    plots. Returns its path."""
    body = [f'<h1>{html.escape(title)}</h1>']
    for i, t in enumerate(tables):
        better = 'higher' if t.mode == 'max' else 'lower'
        body.append(f'<h2>{html.escape(t.task)}</h2><p>{len(t.rows)} runs; '
                    f'metric <code>{html.escape(t.metric)}</code> ({better} '
                    'is better). Click a header to sort.</p>')
        body += [f'<p>{html.escape(n)}</p>' for n in t.notes]
        body.append(_runs_table(t, f'runs-{i}', out_dir))
        if t.groups:
            body.append(f'<h3>Groups by {html.escape(", ".join(t.group_by))}'
                        '</h3>')
            body.append(_groups_table(t, f'groups-{i}'))
        for png in plots.get(t.task, []):
            rel = html.escape(osp.relpath(png, out_dir))
            body.append(f'<div><img src="{rel}" alt="{rel}"></div>')
    page = ('<!DOCTYPE html><html><head><meta charset="utf-8">'
            f'<title>{html.escape(title)}</title><style>{_STYLE}</style>'
            '</head><body>' + '\n'.join(body) +
            f'<script>{_SCRIPT}</script></body></html>')
    path = osp.join(out_dir, 'index.html')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(page)
    return path
