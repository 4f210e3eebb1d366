# Copyright (c) mmext contributors. All rights reserved.
"""What ``tools/train.py`` and ``tools/test.py`` do, callable in a process.

mmpretrain keeps the argument parsing and the config set-up (work dir,
``--resume``, ``--amp``, dataloader defaults, TTA) inside its tool scripts,
so a program that wants "a training run exactly as the tool would do it"
has to start the script as a subprocess (an import of torch and the
registries per run) or copy that code. Here it is in functions both the
tools and :mod:`mmext.apis.flowers_demo` call: :func:`build_train_parser`
/ :func:`build_test_parser` (the tools' arguments), :func:`merge_train_args`
/ :func:`merge_test_args` (those arguments into the config) and
:func:`run_train` / :func:`run_test` (the pre-run check, ``Runner.from_cfg``
and the run). ``run_train(build_train_parser().parse_args(argv))`` is
``python tools/train.py ARGV`` without the process.

Example:
    >>> args = build_train_parser().parse_args(['a.py', '--work-dir', 'w'])
    >>> args.work_dir, args.resume, args.launcher
    ('w', None, 'none')
"""
import argparse
import os.path as osp
from collections import Counter
from copy import deepcopy

import mmengine
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.dist import is_main_process
from mmengine.evaluator import DumpResults
from mmengine.runner import Runner

from .cli import add_debug_argument
from .prepare import prepare_config
from .report_generation import restore_vocab_from_checkpoint

__all__ = [
    'build_train_parser', 'merge_train_args', 'run_train', 'build_test_parser',
    'merge_test_args', 'run_test', 'distinct_experiment_name'
]

_CFG_OPTIONS_HELP = (
    'override some settings in the used config, the key-value pair '
    'in xxx=yyy format will be merged into config file. If the value to '
    'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
    'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
    'Note that the quotation marks are necessary and that no white space '
    'is allowed.')


def _add_common_tail(parser):
    """``--launcher``, ``--debug`` and ``--local-rank`` (both tools)."""
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    add_debug_argument(parser)
    # torchrun passes --local-rank on old versions; keep it harmless
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def _work_dir(cfg, args):
    """CLI ``--work-dir`` > ``work_dir`` in the file > the config's name."""
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])


def build_train_parser():
    """The arguments of ``tools/train.py`` (mmpretrain's, plus ``--debug``).

    Returns:
        argparse.ArgumentParser: The parser.
    """
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory.')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='whether not to evaluate the checkpoint during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='whether to auto scale the learning rate according to the '
        'actual batch size and the original batch size.')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='whether to disable the pin_memory option in dataloaders.')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='whether to disable the persistent_workers option in '
        'dataloaders.')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help=_CFG_OPTIONS_HELP)
    _add_common_tail(parser)
    return parser


def merge_train_args(cfg, args):
    """Merge the :func:`build_train_parser` arguments into ``cfg`` (in
    place).

    Returns:
        Config: ``cfg``.
    """
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    cfg.launcher = args.launcher
    _work_dir(cfg, args)

    if args.amp is True:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        assert optim_wrapper in ['OptimWrapper', 'AmpOptimWrapper'], \
            '`--amp` is not supported custom optimizer wrapper type ' \
            f'`{optim_wrapper}.'
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True

    def set_default_dataloader_cfg(cfg, field):
        if cfg.get(field, None) is None:
            return
        dataloader_cfg = cfg[field]
        dataloader_cfg.setdefault('persistent_workers', True)
        dataloader_cfg.setdefault('pin_memory', True)
        if dataloader_cfg.get('num_workers', 0) == 0:
            dataloader_cfg['persistent_workers'] = False

    if args.no_pin_memory:
        cfg.train_dataloader['pin_memory'] = False
        if cfg.get('val_dataloader'):
            cfg.val_dataloader['pin_memory'] = False
        if cfg.get('test_dataloader'):
            cfg.test_dataloader['pin_memory'] = False
    if args.no_persistent_workers:
        for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            if cfg.get(field):
                cfg[field]['persistent_workers'] = False
    # after --cfg-options, so `num_workers=0` there turns persistence off
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        set_default_dataloader_cfg(cfg, field)
    return cfg


#: config stems run in this process (:func:`distinct_experiment_name`)
_RUNS_OF = Counter()


def distinct_experiment_name(cfg, config):
    """Give a second run of ``config`` in this process its own name.

    mmengine names a run ``<config stem>_<timestamp in seconds>`` and keys
    its logger, visualizer, message hub and default scope by that name, so a
    second runner of the same config started within the same second would
    take over the first one's instances (its log file, its ``vis_data``).
    The first run of a config keeps mmengine's name (a tool's single run is
    unchanged); later ones get ``experiment_name = '<stem>-run<N>'``. A name
    the config sets itself is kept.
    """
    stem = osp.splitext(osp.basename(config))[0]
    _RUNS_OF[stem] += 1
    if _RUNS_OF[stem] > 1 and not cfg.get('experiment_name'):
        cfg.experiment_name = f'{stem}-run{_RUNS_OF[stem]}'
    return cfg


def run_train(args):
    """``tools/train.py``'s run: the config with the arguments merged, the
    pre-run check, ``Runner.from_cfg`` and ``runner.train()``.

    Args:
        args (argparse.Namespace): From :func:`build_train_parser`.

    Returns:
        Runner: The runner, after training.
    """
    cfg = Config.fromfile(args.config)
    cfg = merge_train_args(cfg, args)
    # mmext: the pre-run check (types, keywords, data, weights, BERT
    # folders, monitored metrics, --resume file) before any log is written;
    # resolves weights and sets up CPU DDP via gloo
    resume = args.resume if args.resume not in (None, 'auto') else None
    cfg = prepare_config(cfg, mode='train', checkpoint=resume)

    runner = Runner.from_cfg(distinct_experiment_name(cfg, args.config))
    runner.train()
    return runner


def build_test_parser():
    """The arguments of ``tools/test.py`` (mmpretrain's, plus ``--debug``).

    Returns:
        argparse.ArgumentParser: The parser.
    """
    parser = argparse.ArgumentParser(
        description='MMEXT test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument('--out', help='the file to output results.')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        help='To output whether metrics or predictions. '
        'Defaults to output predictions.')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help=_CFG_OPTIONS_HELP)
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision test')
    parser.add_argument(
        '--show-dir',
        help='directory where the visualization images will be saved.')
    parser.add_argument(
        '--show',
        action='store_true',
        help='whether to display the prediction results in a window.')
    parser.add_argument(
        '--interval',
        type=int,
        default=1,
        help='visualize per interval samples.')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=2,
        help='display time of every window. (second)')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='whether to disable the pin_memory option in dataloaders.')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='Whether to enable the Test-Time-Aug (TTA). If the config file '
        'has `tta_pipeline` and `tta_model` fields, use them to determine the '
        'TTA transforms and how to merge the TTA results. Otherwise, use flip '
        'TTA by averaging classification score.')
    _add_common_tail(parser)
    return parser


def merge_test_args(cfg, args):
    """Merge the :func:`build_test_parser` arguments into ``cfg`` (in
    place).

    Returns:
        Config: ``cfg``.
    """
    cfg.launcher = args.launcher
    _work_dir(cfg, args)
    cfg.load_from = args.checkpoint

    if args.amp:
        cfg.test_cfg.fp16 = True

    # enable visualization
    if args.show or args.show_dir:
        assert 'visualization' in cfg.default_hooks, \
            'VisualizationHook is not set in the `default_hooks` field of ' \
            'config. Please set `visualization=dict(type="VisualizationHook")`'

        cfg.default_hooks.visualization.enable = True
        cfg.default_hooks.visualization.show = args.show
        cfg.default_hooks.visualization.wait_time = args.wait_time
        cfg.default_hooks.visualization.out_dir = args.show_dir
        cfg.default_hooks.visualization.interval = args.interval

    # enable TTA
    if args.tta:
        if 'tta_model' not in cfg:
            cfg.tta_model = dict(type='mmpretrain.AverageClsScoreTTA')
        if 'tta_pipeline' not in cfg:
            test_pipeline = cfg.test_dataloader.dataset.pipeline
            cfg.tta_pipeline = deepcopy(test_pipeline)
            flip_tta = dict(
                type='TestTimeAug',
                transforms=[
                    [
                        dict(type='RandomFlip', prob=1.),
                        dict(type='RandomFlip', prob=0.)
                    ],
                    [test_pipeline[-1]],
                ])
            cfg.tta_pipeline[-1] = flip_tta
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline

    # ----------------- Default dataloader args -----------------
    default_dataloader_cfg = ConfigDict(
        pin_memory=True,
        collate_fn=dict(type='default_collate'),
    )

    def set_default_dataloader_cfg(cfg, field):
        if cfg.get(field, None) is None:
            return
        dataloader_cfg = deepcopy(default_dataloader_cfg)
        dataloader_cfg.update(cfg[field])
        cfg[field] = dataloader_cfg
        if args.no_pin_memory:
            cfg[field]['pin_memory'] = False

    set_default_dataloader_cfg(cfg, 'test_dataloader')

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    return cfg


def run_test(args):
    """``tools/test.py``'s run: the config with the arguments merged, the
    pre-run check (the checkpoint included), ``Runner.from_cfg``,
    ``runner.test()`` and the ``--out`` file.

    Args:
        args (argparse.Namespace): From :func:`build_test_parser`.

    Returns:
        dict: The test metrics.

    Raises:
        ValueError: ``--out-item`` without ``--out``.
    """
    if args.out is None and args.out_item is not None:
        raise ValueError('Please use `--out` argument to specify the '
                         'path of the output file before using `--out-item`.')

    cfg = Config.fromfile(args.config)
    cfg = merge_test_args(cfg, args)
    # the pre-run check, CHECKPOINT included, before any log is written
    cfg = prepare_config(cfg, mode='test', checkpoint=args.checkpoint)
    if 'tokenizer' in str(cfg.get('model', '')):
        # report generators: the vocabulary comes from the checkpoint
        restore_vocab_from_checkpoint(cfg, args.checkpoint)

    runner = Runner.from_cfg(distinct_experiment_name(cfg, args.config))

    if args.out and args.out_item in ['pred', None]:
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))

    metrics = runner.test()

    # every rank holds the gathered metrics; one writes them
    if args.out and args.out_item == 'metrics' and is_main_process():
        mmengine.dump(metrics, args.out)
    return metrics
