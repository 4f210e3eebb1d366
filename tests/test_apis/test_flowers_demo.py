# Copyright (c) mmext contributors. All rights reserved.
"""mmext.apis.flowers_demo, piece by piece (tests/test_demo.py runs the
whole demo through tools/misc/flowers_demo.py), and the make_tiny_data
command line."""
import os
import os.path as osp

import pytest
from mmengine.config import Config

from mmext.apis import flowers_demo
from mmext.apis.flowers_demo import (STAGE1_CONFIG, STAGE2_CONFIG,
                                     make_demo_data, write_stage_config)
from mmext.datasets.flowers import Flowers17, Flowers102
from tests.conftest import ROOT, run_tool


def test_make_demo_data_plants_test_images_into_102_train(tmp_path, capsys):
    root = tmp_path / 'demo'
    (root / 'leakage').mkdir(parents=True)
    (root / 'leakage' / 'stale.txt').write_text('from an earlier run')
    planted = make_demo_data(
        str(root), size=24, per_class_17=4, per_class_102=3, planted=4)
    assert not (root / 'leakage').exists()  # replaced, not appended to
    assert len(planted) == 4
    assert [p.edit for p in planted] == ['reencode', 'resize', 'flip', 'crop']
    test17 = Flowers17(str(root / 'flowers17'), split='test', split_id=1)
    test_paths = {
        test17.get_data_info(i)['img_path']
        for i in range(len(test17))
    }
    assert {p.source for p in planted} <= test_paths
    train102 = Flowers102(str(root / 'flowers102'), split='train')
    train_paths = {
        osp.abspath(train102.get_data_info(i)['img_path'])
        for i in range(len(train102))
    }
    assert {osp.abspath(p.path) for p in planted} <= train_paths
    out = capsys.readouterr().out
    assert f'({17 * 4} images)' in out and '4 of them edited copies' in out


def test_find_planted_leaks_finds_the_crop(tmp_path):
    """The demo's leakage step (find_leakage.py --stage geometric) lists
    every planted copy, the crop too, and nothing else."""
    root = tmp_path / 'demo'
    planted = make_demo_data(
        str(root), size=64, per_class_17=4, per_class_102=3, planted=4)
    assert planted[-1].edit == 'crop'
    found, other = flowers_demo.find_planted_leaks(
        str(root), str(tmp_path), planted)
    assert (found, other) == (4, 0)
    rows = (root / 'leakage' / 'pairs.csv').read_text().splitlines()
    geometric = [r for r in rows if ',geometric,geometric,' in r]
    assert len(geometric) == 1
    assert osp.basename(planted[-1].path) in geometric[0]


def test_write_stage_config_sets_paths_and_size(tmp_path):
    path = write_stage_config(
        str(ROOT / STAGE2_CONFIG), str(tmp_path / 'stage2.py'), 40, {
            'train_dataloader.dataset.data_root': 'somewhere/f17',
            'train_cfg.max_epochs': 2
        })
    cfg = Config.fromfile(path)
    assert cfg.train_dataloader.dataset.data_root == 'somewhere/f17'
    assert cfg.train_cfg.max_epochs == 2
    sizes = [
        t.get(k)
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader')
        for t in cfg[key].dataset.pipeline for k in ('scale', 'crop_size')
        if k in t
    ]
    assert sizes and set(sizes) == {40}  # was 64 in the demo config
    # stage 1 wraps its data set (ExcludeImages): the inner pipeline
    cfg = Config.fromfile(
        write_stage_config(
            str(ROOT / STAGE1_CONFIG), str(tmp_path / 'stage1.py'), 40, {}))
    inner = cfg.train_dataloader.dataset.dataset.pipeline
    assert [t['scale'] for t in inner if 'scale' in t] == [40]


def test_project_file_missing_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(flowers_demo, 'project_root', lambda: tmp_path)
    with pytest.raises(
            FileNotFoundError,
            match=r'configs/nope\.py is neither in .*pip install'):
        flowers_demo._project_file('configs/nope.py')


def test_make_tiny_data_cli(tmp_path):
    proc = run_tool([
        ROOT / 'tools/misc/make_tiny_data.py', '--out', tmp_path / 'tiny',
        '--per-class', 2, '--size', 16
    ],
                    cwd=tmp_path)
    assert len(list((tmp_path / 'tiny' / 'train').rglob('*.png'))) == 6
    assert len(list((tmp_path / 'tiny' / 'val').rglob('*.png'))) == 6
    assert proc.stdout.startswith(f'wrote {tmp_path / "tiny"}/')


def test_stage_output_goes_to_its_log(tmp_path, capfd):
    """A stage runs in this process with file descriptors 1 and 2 in its
    log (as the tool's own process had them); only the command is shown."""
    log = tmp_path / 'stage.log'

    def stage():
        os.write(1, b'out line\n')
        os.write(2, b'err line\n')
        print('print line')  # pytest's sys.stdout is not fd 1
        return 7

    assert flowers_demo._run_stage('tools/x.py', ['--a', 'b'], str(log),
                                   stage) == 7
    assert capfd.readouterr().out == '$ python tools/x.py --a b\n'
    assert log.read_text() == 'out line\nerr line\nprint line\n'


@pytest.mark.parametrize(
    'error', [RuntimeError('broken'),
              SystemExit('tools/x.py: bad config')])
def test_failed_stage_shows_its_command_and_log_tail(tmp_path, error):
    log = tmp_path / 'stage.log'

    def stage():
        os.write(2, b'the cause\n')
        raise error

    with pytest.raises(SystemExit) as info:
        flowers_demo._run_stage('tools/x.py', [], str(log), stage)
    message = str(info.value.code)
    assert message.startswith('failed: python tools/x.py\n')
    assert 'the cause' in message and str(log) in message
    # the traceback, or run_cli's one-line error
    assert ('RuntimeError: broken' if isinstance(error, RuntimeError) else
            'tools/x.py: bad config') in message


def test_runs_in_one_process_get_fresh_experiment_names(tmp_path):
    """mmengine keys a run's logger by ``<config stem>_<second>``: a second
    run of the same config in one process (the demo's stage 2 training and
    its test) gets its own name, even within the same second; the first
    keeps mmengine's, and a name the config sets is kept."""
    from mmengine.config import Config

    from mmext.apis.tool_runs import distinct_experiment_name
    stem = f'{tmp_path.name}_stage'  # not run before in this process
    config = str(tmp_path / f'{stem}.py')
    first = distinct_experiment_name(Config(dict()), config)
    second = distinct_experiment_name(Config(dict()), config)
    third = distinct_experiment_name(Config(dict()), config)
    assert 'experiment_name' not in first
    assert second.experiment_name == f'{stem}-run2'
    assert third.experiment_name == f'{stem}-run3'
    own = distinct_experiment_name(
        Config(dict(experiment_name='mine')), config)
    assert own.experiment_name == 'mine'
    other = distinct_experiment_name(
        Config(dict()), str(tmp_path / 'other_stage.py'))
    assert 'experiment_name' not in other
