# Copyright (c) mmext contributors. All rights reserved.
"""The Flowers leakage demo (``make demo``), end to end on generated data.

1. writes Flowers-17 and Flowers-102 look-alikes in the real layouts under
   ``data/demo/``, planting edited copies (re-encoded, resized, mirrored)
   of Flowers-17 test images into the Flowers-102 training split;
2. finds them with ``tools/dedup/find_leakage.py``, which writes the
   exclude file;
3. trains ResNet-18 at 64 px on Flowers-102 without the excluded images
   (configs/flowers/demo_resnet18_flowers102-noleak.py), then on Flowers-17
   from that backbone (configs/flowers/demo_resnet18_flowers.py), with
   ``tools/train.py``;
4. tests on the Flowers-17 test split with ``tools/test.py`` and prints the
   accuracy and ``leaked: found N of N planted``.

Each stage runs as its own process, on the config this script writes into
the work dir (the demo config with the data paths of this run), so every
step can be re-run by hand with the printed command.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402

from mmext.datasets.flowers import Flowers17  # noqa: E402
from mmext.testing.flowers import (make_flowers17,  # noqa: E402
                                   make_flowers102)

STAGE1 = osp.join(ROOT, 'configs/flowers/demo_resnet18_flowers102-noleak.py')
STAGE2 = osp.join(ROOT, 'configs/flowers/demo_resnet18_flowers.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default='data/demo',
                        help='where flowers17/, flowers102/ and leakage/ '
                        'are written (replaced if present)')
    parser.add_argument('--work-dir', default='work_dirs/flowers_demo')
    parser.add_argument('--size', type=int, default=64,
                        help='image side, and the model input size')
    parser.add_argument('--per-class-17', type=int, default=12,
                        help='Flowers-17 images per class (real: 80)')
    parser.add_argument('--per-class-102', type=int, default=4,
                        help='Flowers-102 images per class (>= 3)')
    parser.add_argument('--planted', type=int, default=6,
                        help='Flowers-17 test images planted into 102')
    parser.add_argument('--epochs-102', type=int, default=3)
    parser.add_argument('--epochs-17', type=int, default=8)
    parser.add_argument('--batch-size', type=int, default=8)
    return parser.parse_args(argv)


def _run(cmd, log_file):
    """Run one stage; its output goes to ``log_file`` (shown on failure)."""
    cwd = os.getcwd() + os.sep
    shown = ' '.join(['python'] + [c[len(cwd):] if c.startswith(cwd) else c
                                   for c in cmd[1:]])
    print(f'$ {shown}', flush=True)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep +
               os.environ.get('PYTHONPATH', ''))
    with open(log_file, 'w') as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                              env=env, cwd=os.getcwd())
    if proc.returncode:
        with open(log_file) as log:
            tail = log.read()[-3000:]
        raise SystemExit(f'failed ({proc.returncode}): {shown}\n--- last '
                         f'lines of {log_file} ---\n{tail}')


def make_data(args):
    """Write both look-alikes; return the planted pairs."""
    f17 = osp.join(args.data_root, 'flowers17')
    f102 = osp.join(args.data_root, 'flowers102')
    for d in (f17, f102, osp.join(args.data_root, 'leakage')):
        shutil.rmtree(d, ignore_errors=True)
    make_flowers17(f17, per_class=args.per_class_17, size=args.size)
    test = Flowers17(f17, split='test', split_id=1, lazy_init=False)
    step = max(1, len(test) // max(args.planted, 1))
    sources = [test.get_data_info(i)['img_path']
               for i in range(0, len(test), step)][:args.planted]
    planted = make_flowers102(f102, per_class=args.per_class_102,
                              size=args.size, duplicates_of=sources)
    print(f'data: {f17} ({17 * args.per_class_17} images), {f102} '
          f'({102 * args.per_class_102} images, {len(planted)} of them '
          f'edited copies of Flowers-17 test images: '
          f'{", ".join(sorted({p.edit for p in planted}))})')
    return planted


def find_leaks(args, planted):
    """Run the leakage tool; return (found, other) exclude entries."""
    out = osp.join(args.data_root, 'leakage')
    _run([sys.executable, osp.join(ROOT, 'tools/dedup/find_leakage.py'),
          '--train', osp.join(args.data_root, 'flowers102'),
          '--heldout', osp.join(args.data_root, 'flowers17', 'jpg'),
          '--out-dir', out, '--workers', '1', '--no-progress'],
         osp.join(args.work_dir, 'find_leakage.log'))
    exclude = osp.join(out, 'exclude.txt')
    with open(exclude, encoding='utf-8') as f:
        listed = {line.strip() for line in f
                  if line.strip() and not line.startswith('#')}
    expected = {'jpg/' + osp.basename(p.path) for p in planted}
    return len(expected & listed), len(listed - expected)


def stage_config(args, template, name, **overrides):
    """Write ``template`` with this run's data paths into the work dir."""
    cfg = Config.fromfile(template)
    cfg.merge_from_dict(overrides)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[key]['dataset']
        pipeline = dataset.get('pipeline') or dataset['dataset']['pipeline']
        for t in pipeline:  # the demo configs' input size is 64
            for key_ in ('scale', 'crop_size'):
                if key_ in t:
                    t[key_] = args.size
    path = osp.join(args.work_dir, f'{name}.py')
    cfg.dump(path)
    return path


def train_and_test(args):
    """Stage 1 (102 no-leak), stage 2 (17), test; return the metrics."""
    d102 = osp.join(args.data_root, 'flowers102')
    d17 = osp.join(args.data_root, 'flowers17')
    s1 = stage_config(
        args, STAGE1, 'stage1_flowers102_noleak', **{
            'train_dataloader.dataset.dataset.data_root': d102,
            'train_dataloader.dataset.exclude_file': osp.join(
                args.data_root, 'leakage', 'exclude.txt'),
            'val_dataloader.dataset.data_root': d102,
            'test_dataloader.dataset.data_root': d102,
            'train_dataloader.batch_size': args.batch_size,
            'train_cfg.max_epochs': args.epochs_102,
            'train_cfg.val_interval': args.epochs_102,
            'param_scheduler.T_max': args.epochs_102,
            'default_hooks.checkpoint.interval': args.epochs_102,
        })
    w1 = osp.join(args.work_dir, 'stage1_flowers102_noleak')
    _run([sys.executable, osp.join(ROOT, 'tools/train.py'), s1,
          '--work-dir', w1], osp.join(args.work_dir, 'stage1.log'))
    ckpt1 = osp.join(w1, f'epoch_{args.epochs_102}.pth')

    s2 = stage_config(
        args, STAGE2, 'stage2_flowers17', **{
            'train_dataloader.dataset.data_root': d17,
            'val_dataloader.dataset.data_root': d17,
            'test_dataloader.dataset.data_root': d17,
            'model.backbone.init_cfg': dict(
                type='Pretrained', checkpoint=osp.abspath(ckpt1),
                prefix='backbone.'),
            'train_dataloader.batch_size': args.batch_size,
            'train_cfg.max_epochs': args.epochs_17,
            'train_cfg.val_interval': args.epochs_17,
            'param_scheduler.T_max': args.epochs_17,
            'default_hooks.checkpoint.interval': args.epochs_17,
        })
    w2 = osp.join(args.work_dir, 'stage2_flowers17')
    _run([sys.executable, osp.join(ROOT, 'tools/train.py'), s2,
          '--work-dir', w2], osp.join(args.work_dir, 'stage2.log'))

    metrics_file = osp.join(args.work_dir, 'test_metrics.json')
    _run([sys.executable, osp.join(ROOT, 'tools/test.py'), s2,
          osp.join(w2, f'epoch_{args.epochs_17}.pth'), '--work-dir',
          osp.join(args.work_dir, 'test'), '--out', metrics_file,
          '--out-item', 'metrics'], osp.join(args.work_dir, 'test.log'))
    with open(metrics_file) as f:
        return json.load(f)


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    os.makedirs(args.work_dir, exist_ok=True)
    planted = make_data(args)
    found, other = find_leaks(args, planted)
    metrics = train_and_test(args)
    top1 = metrics['accuracy/top1']
    num_test = len(Flowers17(osp.join(args.data_root, 'flowers17'),
                             split='test'))
    summary = dict(
        planted=len(planted), found=found, false_matches=other,
        test_accuracy=top1, test_images=num_test, chance=100 / 17,
        seconds=round(time.time() - start, 1))
    with open(osp.join(args.work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print(f'test accuracy: {top1:.1f}% top-1 on {num_test} Flowers-17 test '
          f'images (chance {100 / 17:.1f}%)')
    print(f'leaked: found {found} of {len(planted)} planted'
          + (f' ({other} other images excluded)' if other else ''))
    print(f'evidence: {osp.join(args.data_root, "leakage", "report.html")}'
          f'; summary: {osp.join(args.work_dir, "summary.json")} '
          f'({summary["seconds"]:.0f} s)')
    return 0 if found == len(planted) and not other else 1


if __name__ == '__main__':
    sys.exit(main())
