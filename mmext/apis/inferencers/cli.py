# Copyright (c) mmext contributors. All rights reserved.
"""What ``tools/infer.py`` runs: one inferencer per task, results as a
table on screen and JSON on request.

:func:`run_inference` takes the tool's parsed arguments (``inputs``,
``config``, ``checkpoint``, ``device``, ``batch_size``, ``cfg_options`` and
the task's options) and returns ``(task, results)``; :func:`format_results`
makes the table; :func:`to_json` the JSON-ready copy.
"""
import copy
import os
import os.path as osp

import numpy as np

from .base import load_config, model_task

__all__ = ['run_inference', 'format_results', 'to_json', 'check_inputs']


def check_inputs(task, args):
    """Refuse option / task mismatches (ValueError, one line)."""
    vilbert_opts = ('text', 'pairs')
    if task != 'vilbert' and any(getattr(args, k) for k in vilbert_opts):
        raise ValueError(f'--text / --pairs are for ViLBERT configs; '
                         f'{osp.basename(args.config)} is a {task} config')
    if task == 'vilbert':
        if bool(args.pairs) == bool(args.text is not None):
            raise ValueError('ViLBERT configs need --text (with images) or '
                             '--pairs FILE (without)')
        if args.pairs and args.inputs:
            raise ValueError('give images with --text, or --pairs alone')
    elif not args.inputs:
        raise ValueError(f'give the image(s) to run the {task} config on')
    if task == 'vilbert' and args.text is not None and not args.inputs:
        raise ValueError('--text needs at least one image')


def _report_studies(inputs):
    """Folders are one study each; files given together are the views of
    one study (as tools/report/generate.py takes them)."""
    if all(osp.isdir(p) for p in inputs):
        return list(inputs)
    if any(osp.isdir(p) for p in inputs):
        raise ValueError('give study folders or the image files of one '
                         'study, not both')
    return [list(inputs)]


def run_inference(args):
    """Build the config's inferencer and run it on ``args.inputs``.

    Returns:
        tuple[str, list[dict]]: The task and one result per sample.
    """
    # before anything is imported (mmcv warns on stderr when it is)
    for name, path in (('config', args.config), ('checkpoint',
                                                 args.checkpoint)):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{name} {path} not found')
    for path in args.inputs:
        if not osp.exists(path):
            raise FileNotFoundError(f'input {path} not found')
    cfg = load_config(args.config, args.cfg_options)
    # the pre-run check (types, keywords, BERT folders, checkpoint file)
    from ..prepare import prepare_config
    prepare_config(
        copy.deepcopy(cfg), mode='infer', checkpoint=args.checkpoint)
    task = model_task(cfg)
    check_inputs(task, args)
    device = args.device
    if task == 'classification':
        from ..inference import init_classifier, predict_topk
        inferencer = init_classifier(cfg, args.checkpoint, device)
        return task, [
            dict(
                image=img,
                predictions=predict_topk(inferencer, img, args.topk))
            for img in args.inputs
        ]
    if task == 'vilbert':
        from .vilbert import ViLBERTInferencer, read_pairs_file
        inferencer = ViLBERTInferencer(cfg, args.checkpoint, device)
        pairs = (
            read_pairs_file(args.pairs)
            if args.pairs else [(img, args.text) for img in args.inputs])
        results = inferencer(
            pairs,
            batch_size=args.batch_size,
            return_layers=bool(args.features),
            return_attention=bool(args.features))
        if args.features:
            _save_features(results, args.features)
        return task, results
    if task == 'report':
        from .r2gen import ReportInferencer
        decode = {}
        if args.decode:
            decode['strategy'] = args.decode
        if args.beam_size:
            decode['beam_size'] = args.beam_size
        inferencer = ReportInferencer(
            cfg, args.checkpoint, device, decode=decode)
        return task, inferencer(
            _report_studies(args.inputs),
            batch_size=args.batch_size,
            chexpert=args.chexpert)
    from .butd import BUTDInferencer
    select = {
        k: getattr(args, k)
        for k in ('min_boxes', 'max_boxes', 'conf_thresh')
        if getattr(args, k) is not None
    }
    inferencer = BUTDInferencer(
        cfg, args.checkpoint, device, select_cfg=select)
    return task, inferencer(
        list(args.inputs), batch_size=args.batch_size, out_dir=args.out_dir)


def _save_features(results, out_dir):
    """``<out_dir>/<i>.npz`` per pair: features and co-attention maps."""
    os.makedirs(out_dir, exist_ok=True)
    for i, res in enumerate(results):
        arrays = {f'features/{k}': v for k, v in res['features'].items()}
        arrays.update(
            {f'coattention/{k}': v
             for k, v in res['coattention'].items()})
        path = osp.join(out_dir, f'{i}.npz')
        np.savez(path, **arrays)
        res['features_file'] = path


def to_json(results):
    """``results`` without arrays (features are in their ``.npz``)."""
    return [{
        k: v
        for k, v in res.items() if k not in ('features', 'coattention')
    } for res in results]


def _table(header, rows):
    """Left-aligned columns separated by two spaces."""
    lines = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    widths = [max(len(line[j]) for line in lines) for j in range(len(header))]
    return '\n'.join('  '.join(x.ljust(w)
                               for x, w in zip(line, widths)).rstrip()
                     for line in lines)


def _score(x):
    return '-' if x is None else f'{x:.4f}'


def format_results(task, results):
    """The results as the text table ``tools/infer.py`` prints."""
    if task == 'classification':
        blocks = []
        for res in results:
            rows = [
                f'{rank:>4}  {p["index"]:>5}  {p["score"]:>7.4f}  '
                f'{p["name"] if p["name"] is not None else "-"}'
                for rank, p in enumerate(res['predictions'], 1)
            ]
            head = f'{"rank":>4}  {"index":>5}  {"score":>7}  class'
            title = [res['image']] if len(results) > 1 else []
            blocks.append('\n'.join(title + [head] + rows))
        return '\n\n'.join(blocks)
    if task == 'vilbert':
        if results and 'pred_class' in results[0]:
            rows = [[
                r['image'], r['text'],
                _labels(r['pred_label']),
                _labels(r['pred_class']),
                ' '.join(_score(s) for s in r['pred_score'])
            ] for r in results]
            return _table(['image', 'text', 'label', 'class', 'score'], rows)
        rows = [[r['image'], r['text'],
                 _score(r['itm_score'])] for r in results]
        return _table(['image', 'text', 'itm_score'], rows)
    if task == 'report':
        blocks = []
        for r in results:
            lines = [' '.join(r['images']), '  ' + (r['report'] or '<empty>')]
            if 'chexpert' in r:
                labels = ', '.join(f'{k}={v}'
                                   for k, v in r['chexpert'].items()) or 'none'
                lines.append(f'  CheXpert: {labels}')
            blocks.append('\n'.join(lines))
        return '\n\n'.join(blocks)
    blocks = []
    for r in results:
        rows = [[
            i, ' '.join(f'{v:.1f}'
                        for v in box), obj, f'{os_:.4f}', attr, f'{as_:.4f}'
        ] for i, (box, obj, os_, attr, as_) in enumerate(
            zip(r['boxes'], r['objects'], r['object_scores'], r['attributes'],
                r['attribute_scores']))]
        title = f'{r["image"]} ({len(rows)} regions' + (
            f', drawn: {r["drawn"]})' if 'drawn' in r else ')')
        blocks.append(title + '\n' + _table(
            ['#', 'box', 'object', 'score', 'attribute', 'score'], rows))
    return '\n\n'.join(blocks)


def _labels(x):
    return ','.join(map(str, x)) if isinstance(x, list) else str(x)
