# Copyright (c) mmext contributors. All rights reserved.
"""The Flowers leakage demo (``make demo``), end to end on generated data.

1. :func:`make_demo_data` writes Flowers-17 and Flowers-102 look-alikes in
   the real layouts (:mod:`mmext.datasets.synthetic.flowers`), planting
   edited copies (re-encoded, resized, mirrored, cropped: every fourth copy
   is a 70 % crop) of Flowers-17 test images into the Flowers-102 training
   split;
2. :func:`find_planted_leaks` finds them with
   :func:`mmext.dedup.find_leakage` (``stage='geometric'``: perceptual
   hashes, then local features + RANSAC for the crop), which writes the
   exclude file;
3. :func:`train_and_test` trains ResNet-18 on Flowers-102 without the
   excluded images, then on Flowers-17 from that backbone (the two demo
   configs :data:`STAGE1_CONFIG`, :data:`STAGE2_CONFIG`), and tests on the
   Flowers-17 test split;
4. :func:`run_flowers_demo` runs the three and prints the accuracy and
   ``leaked: found N of N planted``.

Every stage runs in this process through the functions its tool is a
command line for (``find_leakage``; :mod:`mmext.apis.tool_runs` for
``tools/train.py`` / ``tools/test.py``, with the tool's own argument
parser), on the config written into the work dir (the demo config with the
data paths of this run). Each stage's tool command is printed, so every
step can be re-run by hand, and its output goes to a log file in the work
dir. (A subprocess per tool cost four more imports of torch and the
registries.) ``tools/misc/flowers_demo.py`` is the command line.
"""
import contextlib
import json
import logging
import os
import os.path as osp
import shlex
import shutil
import sys
import time
import traceback

from mmengine.config import Config
from mmengine.logging import MMLogger

from mmext.datasets.flowers import Flowers17
from mmext.datasets.synthetic.flowers import (PLANT_EDITS, make_flowers17,
                                              make_flowers102)
from mmext.dedup import LeakageCheckError, find_leakage, read_exclude_file
from mmext.utils.paths import project_root
from .cli import run_cli
from .tool_runs import (build_test_parser, build_train_parser, run_test,
                        run_train)

__all__ = [
    'STAGE1_CONFIG', 'STAGE2_CONFIG', 'make_demo_data', 'find_planted_leaks',
    'write_stage_config', 'train_and_test', 'run_flowers_demo'
]

#: the demo configs, relative to the project (or to ``mmext/.mim``)
STAGE1_CONFIG = ('configs/flowers/'
                 'resnet18_1xb8-scratch_demo-flowers102-noleak-64px.py')
STAGE2_CONFIG = 'configs/flowers/resnet18_1xb8-scratch_demo-flowers17-64px.py'


def _project_file(relpath):
    """``relpath`` in the clone, or in ``mmext/.mim`` of an installed
    package (where ``pip install`` copies ``configs/`` and ``tools/``)."""
    mim = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '.mim')
    for base in (str(project_root()), mim):
        path = osp.join(base, relpath)
        if osp.exists(path):
            return path
    raise FileNotFoundError(
        f'{relpath} is neither in {project_root()} nor in {mim}; run the '
        f'demo from a clone of mmext (pip install -e .)')


def _on_fd(stream, fd):
    """``stream`` if it writes to ``fd``, else a text stream that does (a
    notebook's or pytest's ``sys.stdout`` does not; left open, as a logger
    made meanwhile keeps it)."""
    try:
        if stream.fileno() == fd:
            return stream
    except (AttributeError, OSError, ValueError):
        pass
    return open(fd, 'w', buffering=1, closefd=False)


@contextlib.contextmanager
def _output_to(log_file):
    """Send file descriptors 1 and 2, and ``sys.stdout`` / ``sys.stderr``,
    to ``log_file``: mmengine's loggers, warnings, C libraries and worker
    processes all land there, as when the stage was its own process."""
    streams = sys.stdout, sys.stderr
    for stream in streams:
        stream.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with open(log_file, 'w') as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            sys.stdout, sys.stderr = _on_fd(streams[0],
                                            1), _on_fd(streams[1], 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                sys.stdout, sys.stderr = streams
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)


def _run_stage(tool, argv, log_file, stage):
    """Print ``python TOOL ARGV`` and run ``stage()`` (what that command
    does) in this process, its output in ``log_file``.

    Returns:
        What ``stage`` returns.

    Raises:
        SystemExit: The stage failed (with the tail of its log).
    """
    cwd = os.getcwd() + os.sep
    shown = ' '.join(
        ['python'] +
        [c[len(cwd):] if c.startswith(cwd) else c for c in [tool, *argv]])
    print(f'$ {shown}', flush=True)
    failure = result = None
    with _output_to(log_file):
        try:
            result = stage()
        except SystemExit as e:  # the tool's one-line error (run_cli)
            if e.code not in (None, 0):  # exit 0: a success, as before
                failure = '' if isinstance(e.code, int) else f'{e.code}\n'
        except Exception:
            failure = traceback.format_exc()
    if failure is not None:
        with open(log_file, 'a') as log:
            log.write(failure)
        with open(log_file) as log:
            tail = log.read()[-3000:]
        raise SystemExit(f'failed: {shown}\n--- last lines of {log_file} '
                         f'---\n{tail}')
    return result


def _run_tool_stage(tool, argv, log_file):
    """``python TOOL ARGV`` (``tools/train.py`` / ``tools/test.py``) in this
    process: ``run_train`` / ``run_test`` on the tool's parsed arguments, as
    the tool's ``main`` calls them; then the run's log file is closed
    (mmengine's logger outlives the runner)."""
    run, parser = {
        'tools/train.py': (run_train, build_train_parser),
        'tools/test.py': (run_test, build_test_parser)
    }[tool]
    try:
        return _run_stage(
            _project_file(tool), argv, log_file,
            lambda: run_cli(run, parser().parse_args(argv), prog=tool))
    finally:
        for handler in MMLogger.get_current_instance().handlers:
            if isinstance(handler, logging.FileHandler):
                handler.close()


def make_demo_data(data_root,
                   size=64,
                   per_class_17=12,
                   per_class_102=4,
                   planted=6):
    """Write both look-alikes under ``data_root`` (``flowers17/``,
    ``flowers102/``; these and ``leakage/`` are replaced if present).

    Args:
        data_root (str): The folder to write into.
        size (int): Image side. Defaults to 64.
        per_class_17 (int): Flowers-17 images per class. Defaults to 12.
        per_class_102 (int): Flowers-102 images per class (>= 3).
            Defaults to 4.
        planted (int): Flowers-17 test images planted, edited, into the
            Flowers-102 training split, cycling through re-encode, resize,
            mirror and crop
            (:data:`~mmext.datasets.synthetic.flowers.PLANT_EDITS`;
            the crop only the geometric stage finds). Defaults to 6.

    Returns:
        list[PlantedDuplicate]: The planted copies.
    """
    f17 = osp.join(data_root, 'flowers17')
    f102 = osp.join(data_root, 'flowers102')
    for d in (f17, f102, osp.join(data_root, 'leakage')):
        shutil.rmtree(d, ignore_errors=True)
    make_flowers17(f17, per_class=per_class_17, size=size)
    test = Flowers17(f17, split='test', split_id=1, lazy_init=False)
    step = max(1, len(test) // max(planted, 1))
    sources = [
        test.get_data_info(i)['img_path'] for i in range(0, len(test), step)
    ][:planted]
    copies = make_flowers102(
        f102,
        per_class=per_class_102,
        size=size,
        duplicates_of=sources,
        edits=PLANT_EDITS)
    print(f'data: {f17} ({17 * per_class_17} images), {f102} '
          f'({102 * per_class_102} images, {len(copies)} of them '
          f'edited copies of Flowers-17 test images: '
          f'{", ".join(sorted({p.edit for p in copies}))})')
    return copies


def find_planted_leaks(data_root, work_dir, planted):
    """``tools/dedup/find_leakage.py --stage geometric`` (Flowers-102
    against the Flowers-17 images) into ``data_root/leakage``, in this
    process: :func:`mmext.dedup.find_leakage` with the tool's arguments.

    Returns:
        tuple[int, int]: Planted copies listed in the exclude file, and
        other images listed there (false matches).
    """
    out = osp.join(data_root, 'leakage')
    tool = _project_file('tools/dedup/find_leakage.py')
    train = osp.join(data_root, 'flowers102')
    heldout = osp.join(data_root, 'flowers17', 'jpg')
    argv = [
        '--train', train, '--heldout', heldout, '--out-dir', out, '--workers',
        '1', '--no-progress', '--stage', 'geometric'
    ]

    def stage():  # what the tool's main does with these arguments
        try:
            find_leakage(
                train,
                heldout,
                out,
                workers=1,
                progress=False,
                stage='geometric',
                command=shlex.join([tool, *argv]))
        except LeakageCheckError as e:
            raise SystemExit(f'find_leakage: {e}')

    _run_stage(tool, argv, osp.join(work_dir, 'find_leakage.log'), stage)
    listed = set(read_exclude_file(osp.join(out, 'exclude.txt')))
    expected = {'jpg/' + osp.basename(p.path) for p in planted}
    return len(expected & listed), len(listed - expected)


def write_stage_config(template, path, size, overrides):
    """Write ``template`` with ``overrides`` (dotted keys) and every
    pipeline's ``scale`` / ``crop_size`` set to ``size`` to ``path``."""
    cfg = Config.fromfile(template)
    cfg.merge_from_dict(overrides)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[key]['dataset']
        pipeline = dataset.get('pipeline') or dataset['dataset']['pipeline']
        for t in pipeline:  # the demo configs' input size is 64
            for key_ in ('scale', 'crop_size'):
                if key_ in t:
                    t[key_] = size
    cfg.dump(path)
    return path


def _schedule(epochs, batch_size):
    return {
        'train_dataloader.batch_size': batch_size,
        'train_cfg.max_epochs': epochs,
        'train_cfg.val_interval': epochs,
        'param_scheduler.T_max': epochs,
        'default_hooks.checkpoint.interval': epochs,
    }


def train_and_test(data_root,
                   work_dir,
                   size=64,
                   epochs_102=3,
                   epochs_17=8,
                   batch_size=8):
    """Stage 1 (Flowers-102 without the exclude file's images), stage 2
    (Flowers-17 from stage 1's backbone), then the Flowers-17 test split.

    Returns:
        dict: The test metrics (``accuracy/top1``).
    """
    d102 = osp.join(data_root, 'flowers102')
    d17 = osp.join(data_root, 'flowers17')
    s1 = write_stage_config(
        _project_file(STAGE1_CONFIG),
        osp.join(work_dir, 'stage1_flowers102_noleak.py'), size, {
            'train_dataloader.dataset.dataset.data_root':
            d102,
            'train_dataloader.dataset.exclude_file':
            osp.join(data_root, 'leakage', 'exclude.txt'),
            'val_dataloader.dataset.data_root':
            d102,
            'test_dataloader.dataset.data_root':
            d102,
            **_schedule(epochs_102, batch_size)
        })
    w1 = osp.join(work_dir, 'stage1_flowers102_noleak')
    _run_tool_stage('tools/train.py', [s1, '--work-dir', w1],
                    osp.join(work_dir, 'stage1.log'))
    ckpt1 = osp.join(w1, f'epoch_{epochs_102}.pth')

    s2 = write_stage_config(
        _project_file(STAGE2_CONFIG),
        osp.join(work_dir, 'stage2_flowers17.py'), size, {
            'train_dataloader.dataset.data_root':
            d17,
            'val_dataloader.dataset.data_root':
            d17,
            'test_dataloader.dataset.data_root':
            d17,
            'model.backbone.init_cfg':
            dict(
                type='Pretrained',
                checkpoint=osp.abspath(ckpt1),
                prefix='backbone.'),
            **_schedule(epochs_17, batch_size)
        })
    w2 = osp.join(work_dir, 'stage2_flowers17')
    _run_tool_stage('tools/train.py', [s2, '--work-dir', w2],
                    osp.join(work_dir, 'stage2.log'))

    metrics_file = osp.join(work_dir, 'test_metrics.json')
    _run_tool_stage('tools/test.py', [
        s2,
        osp.join(w2, f'epoch_{epochs_17}.pth'), '--work-dir',
        osp.join(work_dir, 'test'), '--out', metrics_file, '--out-item',
        'metrics'
    ], osp.join(work_dir, 'test.log'))
    with open(metrics_file) as f:
        return json.load(f)


def run_flowers_demo(data_root='data/demo',
                     work_dir='work_dirs/flowers_demo',
                     size=64,
                     per_class_17=12,
                     per_class_102=4,
                     planted=6,
                     epochs_102=3,
                     epochs_17=8,
                     batch_size=8):
    """Data, leakage search, two trainings and the test; prints the result
    and writes ``work_dir/summary.json``.

    Args:
        data_root (str): Where ``flowers17/``, ``flowers102/`` and
            ``leakage/`` are written. Defaults to ``'data/demo'``.
        work_dir (str): Stage configs, logs and checkpoints. Defaults to
            ``'work_dirs/flowers_demo'``.
        size (int): Image side, and the model input size. Defaults to 64.
        per_class_17 (int): See :func:`make_demo_data`. Defaults to 12.
        per_class_102 (int): See :func:`make_demo_data`. Defaults to 4.
        planted (int): See :func:`make_demo_data`. Defaults to 6.
        epochs_102 (int): Stage 1 epochs. Defaults to 3.
        epochs_17 (int): Stage 2 epochs. Defaults to 8.
        batch_size (int): Training batch size. Defaults to 8.

    Returns:
        dict: The summary: ``planted``, ``found``, ``false_matches``,
        ``test_accuracy``, ``test_images``, ``chance``, ``seconds``.
    """
    start = time.time()
    os.makedirs(work_dir, exist_ok=True)
    copies = make_demo_data(data_root, size, per_class_17, per_class_102,
                            planted)
    found, other = find_planted_leaks(data_root, work_dir, copies)
    metrics = train_and_test(data_root, work_dir, size, epochs_102, epochs_17,
                             batch_size)
    top1 = metrics['accuracy/top1']
    num_test = len(Flowers17(osp.join(data_root, 'flowers17'), split='test'))
    summary = dict(
        planted=len(copies),
        found=found,
        false_matches=other,
        test_accuracy=top1,
        test_images=num_test,
        chance=100 / 17,
        seconds=round(time.time() - start, 1))
    with open(osp.join(work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print(f'test accuracy: {top1:.1f}% top-1 on {num_test} Flowers-17 test '
          f'images (chance {100 / 17:.1f}%)')
    print(f'leaked: found {found} of {len(copies)} planted' +
          (f' ({other} other images excluded)' if other else ''))
    print(f'evidence: {osp.join(data_root, "leakage", "report.html")}'
          f'; summary: {osp.join(work_dir, "summary.json")} '
          f'({summary["seconds"]:.0f} s)')
    return summary
