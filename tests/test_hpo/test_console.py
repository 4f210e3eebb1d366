# Copyright (c) mmext contributors. All rights reserved.
"""What tools/hpo.py prints (trial lines, the study line, the summary) and
the parallel-coordinate axes of its report."""
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmext.hpo.console import (format_params, short_names, study_line,
                               summary_lines, trial_line)
from mmext.hpo.study_report import (parallel_coordinate_axis_labels,
                                    parallel_coordinate_figure, wrap_label,
                                    write_plots)

KEYS = [
    'optim_wrapper.optimizer.lr', 'optim_wrapper.optimizer.momentum',
    'model.vilbert.coattention.drop', 'model.vilbert.coattention.attn_drop',
    'model.head.drop', 'drop'
]


def test_short_names():
    assert short_names(KEYS) == {
        'optim_wrapper.optimizer.lr': 'lr',
        'optim_wrapper.optimizer.momentum': 'momentum',
        'model.vilbert.coattention.drop': 'coattention.drop',
        'model.vilbert.coattention.attn_drop': 'attn_drop',
        'model.head.drop': 'head.drop',
        'drop': 'drop',
    }
    # a key that is the suffix of another keeps its whole text
    assert short_names(['a.b', 'b']) == {'a.b': 'a.b', 'b': 'b'}


_part = st.sampled_from(['a', 'b', 'lr', 'drop', 'x_y'])


@settings(max_examples=60)
@given(
    st.lists(
        st.lists(_part, min_size=1, max_size=4).map('.'.join),
        min_size=1,
        max_size=8))
def test_short_names_unique_suffixes(keys):
    names = short_names(keys)
    assert set(names) == set(keys)
    assert len(set(names.values())) == len(names)  # never the same text
    for key, name in names.items():
        assert key == name or key.endswith('.' + name)


def test_wrap_label_never_cuts():
    for text in KEYS + ['pretrain/itm_accuracy', 'a' * 40]:
        wrapped = wrap_label(text, 12)
        assert wrapped.replace('\n', '') == text
    assert wrap_label('optim_wrapper.optimizer.momentum', 14) == \
        'optim_wrapper.\noptimizer.\nmomentum'


def _study(n=5, fail=None, prune=None):
    study = optuna.create_study(
        direction='maximize', sampler=optuna.samplers.RandomSampler(0))
    for i in range(n):
        trial = study.ask()
        lr = trial.suggest_float('optim_wrapper.optimizer.lr', 0.01, 0.1)
        trial.suggest_float('optim_wrapper.optimizer.momentum', 0.5, 0.9)
        trial.suggest_float('model.vilbert.coattention.drop', 0.0, 0.4)
        trial.suggest_float('model.vilbert.coattention.attn_drop', 0.0, 0.4)
        if i == fail:
            trial.set_user_attr('fail_reason', 'RuntimeError: planted\nmore')
            trial.set_user_attr('traceback', 'w/trial_1/traceback.txt')
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif i == prune:
            trial.report(12.5, 2)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, lr * 1000)
    return study


def test_trial_lines_and_study_line():
    study = _study(4, fail=1, prune=2)
    trials = study.get_trials()
    metrics = ['accuracy/top1']
    line = trial_line(trials[1], study, metrics)
    assert line.startswith('trial 1 (0 s): lr=')
    assert ' -> FAIL RuntimeError: planted (see w/trial_1/traceback.txt) | ' \
        in line
    assert line.endswith(f'best so far accuracy/top1 '
                         f'{study.best_value:.4g} (trial '
                         f'{study.best_trial.number})')
    assert ' -> PRUNED at step 2 (accuracy/top1 12.5) | ' in trial_line(
        trials[2], study, metrics)
    first = trials[0]
    assert f"lr={first.params['optim_wrapper.optimizer.lr']:.4g}, " \
        'momentum=' in trial_line(first, study, metrics)
    assert format_params({'a.lr': float('nan'), 'b.x': 'sgd'}) == \
        "lr=nan, x='sgd'"
    assert study_line(study, 'sqlite:///w/study.db', 6) == (
        f"resuming study '{study.study_name}' (sqlite:///w/study.db): "
        '3 finished (2 complete, 1 pruned), 1 failed, 0 running; 2 more '
        'trial(s) to reach --n-trials 6')
    empty = optuna.create_study()
    assert study_line(
        empty, 'journal:w/j.log',
        3) == (f"new study '{empty.study_name}' (journal:w/j.log); 3 more "
               'trial(s) to reach --n-trials 3')
    only_failed = _study(1, fail=0)
    assert trial_line(only_failed.trials[0], only_failed,
                      metrics).endswith('| no complete trial yet')


def test_summary_lines():
    lines = summary_lines(
        dict(
            study_name='s',
            states=dict(COMPLETE=2, FAIL=1),
            ran=3,
            metrics=['accuracy/top1'],
            best=[
                dict(
                    number=0,
                    values=[66.666],
                    params={'optim_wrapper.optimizer.lr': 0.05})
            ],
            best_configs=['w/best_config.py'],
            plots=['w/plots/history.png'],
            notes=['HTML plots skipped: plotly is not installed']), 'w')
    assert lines == [
        "study 's': 2 complete, 0 pruned, 1 failed (3 run now)",
        'best trial 0: accuracy/top1 66.67 (lr=0.05)',
        'best config w/best_config.py; trials.csv, summary.json, plots/ '
        'and trial_N/train.log in w',
        'HTML plots skipped: plotly is not installed'
    ]


def test_parallel_coordinate_axes(tmp_path):
    """Unique labels (optuna's own cut both optimizer keys to the same
    text), none overlapping another, the PNG >= 800 px wide."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vm
    from PIL import Image
    study = _study(6, fail=1)
    labels = parallel_coordinate_axis_labels(study, 'accuracy/top1')
    assert labels == ['accuracy/top1', 'attn_drop', 'drop', 'lr', 'momentum']
    fig = parallel_coordinate_figure(study, vm, target_name='accuracy/top1')
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        ticks = [t for t in ax.get_xticklabels() if t.get_text()]
        assert [t.get_text() for t in ticks] == labels
        boxes = [t.get_window_extent(renderer) for t in ticks]
        for left, right in zip(boxes, boxes[1:]):
            assert left.x1 < right.x0  # side by side, no overlap
        # the area bbox_inches='tight' saves, in pixels, holds every label
        saved = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)
        assert all(
            saved.contains(b.x0, b.y0) and saved.contains(b.x1, b.y1)
            for b in boxes)
    finally:
        plt.close('all')
    files, _ = write_plots(study, str(tmp_path), ['accuracy/top1'])
    png = tmp_path / 'parallel_coordinate.png'
    assert str(png) in files
    width, _ = Image.open(png).size
    assert width >= 800


@pytest.mark.parametrize('n', [2, 12])
def test_parallel_coordinate_width_grows_with_axes(n):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vm
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(0))
    study.optimize(
        lambda t: sum(
            t.suggest_float(f'model.part{i}.value', 0, 1) for i in range(n)),
        n_trials=4)
    fig = parallel_coordinate_figure(study, vm, target_name='loss')
    try:
        assert fig.get_size_inches()[0] >= max(11, 1.3 * (n + 1))
        labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
        assert len(set(labels)) == n + 1
    finally:
        plt.close('all')
