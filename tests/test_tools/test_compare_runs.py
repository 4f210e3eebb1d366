# Copyright (c) mmext contributors. All rights reserved.
"""tools/analysis_tools/compare_runs.py on a real resumed tiny training and
generated runs; the HTML page sorted in headless Chromium."""
import html.parser
import json
import shutil
import subprocess

import pytest

from mmext.analysis.runs import read_scalars
from tests.conftest import ROOT, TINY_CONFIG, run_tool
from tests.test_analysis.test_compare_runs import make_matrix

TRAIN = ROOT / 'tools' / 'train.py'
COMPARE = ROOT / 'tools' / 'analysis_tools' / 'compare_runs.py'


def _chromium():
    for name in ('chromium', 'chromium-browser', 'google-chrome'):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _resumed_run_compared(ws):
    """A real run (1 epoch, resumed to 2) compared with generated runs."""
    cfg = ws / 'hooked_tiny.py'
    cfg.write_text(f"_base_ = ['{TINY_CONFIG}']\n"
                   "custom_hooks = [dict(type='RunStatusHook')]\n")
    work = 'work_dirs/flowers_resumed_real'
    run_tool([
        TRAIN, cfg, '--work-dir', work, '--cfg-options',
        'train_cfg.max_epochs=1'
    ],
             cwd=ws)
    run_tool([
        TRAIN, cfg, '--work-dir', work, '--resume', '--cfg-options',
        'train_cfg.max_epochs=2'
    ],
             cwd=ws)
    dirs = make_matrix(ws / 'work_dirs' / 'gen')
    out = run_tool([
        COMPARE, work, *dirs.values(), '--metric', 'accuracy/top1',
        '--group-by', 'model.backbone.frozen_stages', '--no-flops', '--out',
        'work_dirs/compare'
    ],
                   cwd=ws)
    return ws, ws / work, ws / 'work_dirs' / 'compare', out


@pytest.fixture(scope='module')
def runs(tools_ahead, tiny_workspace, tmp_path_factory):
    """The module's tool runs, started together (two at a time)."""
    tools_ahead.start('compared', [
        'test_real_resumed_run_in_table', 'test_plots_big_enough',
        'test_html_sorts_in_headless_chromium'
    ], _resumed_run_compared, tiny_workspace)
    empty = tmp_path_factory.mktemp('not_a_run')
    (empty / 'empty').mkdir()
    tools_ahead.start(
        'not_a_run', ['test_not_a_run_exits_with_one_line'],
        run_tool, [COMPARE, empty / 'empty', '--out', empty / 'o'],
        cwd=tiny_workspace,
        check=False)
    return tools_ahead, empty


@pytest.fixture(scope='module')
def compared(runs):
    return runs[0]['compared']


def test_real_resumed_run_in_table(compared):
    ws, work, out_dir, out = compared
    assert '1 crashed' in out.stdout and 'index.html' in out.stdout
    table = json.loads((out_dir / 'compare.json').read_text())['tables'][0]
    row = next(r for r in table['rows'] if r['run'] == 'flowers_resumed_real')
    parts = sorted(work.glob('2*/vis_data/scalars.json'))
    assert len(parts) == 2
    (t1, v1), (t2, v2) = (read_scalars(str(p)) for p in parts)
    vals = v1 + v2
    assert [v['step'] for v in vals] == [1, 2]
    best = max(vals, key=lambda v: v['accuracy/top1'])
    assert (row['best'], row['best_step']) == (best['accuracy/top1'],
                                               best['step'])
    assert (row['final'], row['final_step']) == (vals[-1]['accuracy/top1'], 2)
    assert row['peak_memory_mb'] == max(r['rss_mb'] for r in t1 + t2)
    assert row['status'] == 'finished' and row['wall_time_s'] > 0
    assert row['params_trainable'] == row['params_total'] > 11_000_000
    # the generated runs write what a real run writes
    gen = json.loads((ws / 'work_dirs/gen/flowers_noval/20260101_100000/'
                      'vis_data/scalars.json').read_text().splitlines()[0])
    assert set(gen) == set(t1[0])


def test_plots_big_enough(compared):
    from PIL import Image
    _, _, out_dir, _ = compared
    pngs = sorted((out_dir / 'plots').glob('*.png'))
    kinds = {p.name.split('_')[0] for p in pngs}
    assert kinds == {'curve', 'groups', 'tradeoff'}
    for p in pngs:
        w, h = Image.open(p).size
        assert min(w, h) >= 800, (p, w, h)


class _Rows(html.parser.HTMLParser):
    """``data-value`` of the first cell of every row of one table, and the
    ``data-sorted`` attribute of <body>."""

    def __init__(self, table_id, column):
        super().__init__()
        self.table_id, self.column = table_id, column
        self.inside, self.col, self.index, self.values = False, -1, None, []
        self.sorted = None
        self.heads = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == 'body':
            self.sorted = a.get('data-sorted')
        if tag == 'table':
            self.inside = a.get('id') == self.table_id
        if not self.inside:
            return
        if tag == 'th':
            self.heads.append(a.get('data-col'))
        if tag == 'tr':
            self.col = -1
        if tag == 'td':
            self.col += 1
            if self.col == self.heads.index(self.column):
                self.values.append(a.get('data-value'))


def _column(page, column, table='runs-0'):
    p = _Rows(table, column)
    p.feed(page)
    return p


def test_html_sorts_in_headless_chromium(compared):
    chromium = _chromium()
    if chromium is None:
        pytest.skip('chromium not installed (apt-get install -y chromium)')
    _, _, out_dir, _ = compared
    page = out_dir / 'index.html'
    unsorted = _column(page.read_text(), 'best')
    url = page.as_uri() + '?sort=runs-0:best:desc'
    dom = subprocess.run([
        chromium, '--headless', '--no-sandbox', '--disable-gpu',
        '--virtual-time-budget=3000', '--dump-dom', url
    ],
                         capture_output=True,
                         text=True,
                         timeout=120).stdout
    got = _column(dom, 'best')
    assert got.sorted == 'runs-0:best:desc'  # the page's own click ran
    nums = [float(v) for v in got.values if v]
    assert nums == sorted(nums, reverse=True) and len(nums) >= 6
    assert got.values[len(nums):] == [''] * (len(got.values) - len(nums))
    assert sorted(got.values, key=str) == sorted(unsorted.values, key=str)
    assert got.values != unsorted.values  # generated order is not sorted
    assert 'href="../flowers_resumed_real/' in dom  # links to config, logs


def test_not_a_run_exits_with_one_line(runs):
    proc = runs[0]['not_a_run']
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith('compare_runs: ') and 'not a run' in lines[-1]
    assert 'Traceback' not in proc.stderr
    assert not (runs[1] / 'o').exists()
