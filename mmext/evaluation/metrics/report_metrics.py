# Copyright (c) mmext contributors. All rights reserved.
"""Natural-language generation metrics for radiology reports."""
import csv
import json
import os
import os.path as osp
import shutil
import threading
import warnings

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmext.registry import METRICS

__all__ = [
    'ReportMetric', 'compute_nlg_scores', 'write_report_outputs',
    'resolve_out_dir', 'report_pair'
]

_EMPTY = '<empty>'  # stands in for an empty prediction (ROUGE divides by
# its length); it matches no reference token, so it scores as nothing


def _one_line(text):
    return ' '.join(str(text).split())


def _meteor(gts, res):
    """METEOR through pycocoevalcap's Java jar, or None (with a warning)
    when Java is missing or the jar fails (e.g. the BrokenPipe seen with
    some Java versions): the other metrics still count."""
    if shutil.which('java') is None:
        warnings.warn('ReportMetric: METEOR skipped: no `java` on PATH '
                      '(pycocoevalcap runs meteor-1.5.jar); install a JRE, '
                      'e.g. `apt-get install default-jre-headless`')
        return None
    from pycocoevalcap.meteor.meteor import Meteor
    scorer = None
    try:
        scorer = Meteor()
        score, _ = scorer.compute_score(gts, res)
        return float(score)
    except (OSError, ValueError, BrokenPipeError) as e:
        warnings.warn(f'ReportMetric: METEOR skipped: the Java scorer '
                      f'failed ({type(e).__name__}: {e})')
        return None
    finally:
        if scorer is not None:
            # a failed compute_score keeps the lock that Meteor.__del__
            # takes: give it a fresh one, then stop the jar now
            scorer.lock = threading.Lock()
            try:
                scorer.meteor_p.stdin.close()
            except OSError:
                pass
            scorer.meteor_p.kill()
            scorer.meteor_p.wait()


def compute_nlg_scores(gts, res, metrics=('bleu', 'meteor', 'rouge', 'cider')):
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of ``res`` against ``gts``.

    Args:
        gts (list[str]): Reference reports (one per sample).
        res (list[str]): Generated reports, same order.
        metrics (Sequence[str]): Which families to compute.

    Returns:
        dict: ``BLEU_1`` .. ``BLEU_4``, ``METEOR``, ``ROUGE_L``, ``CIDEr``
        (corpus-level values as pycocoevalcap reports them).
    """
    if len(gts) != len(res):
        raise ValueError(f'compute_nlg_scores: {len(gts)} references but '
                         f'{len(res)} predictions')
    if not gts:
        raise ValueError('compute_nlg_scores: no samples to score')
    gts_d = {i: [_one_line(g) or _EMPTY] for i, g in enumerate(gts)}
    res_d = {i: [_one_line(r) or _EMPTY] for i, r in enumerate(res)}
    scores = {}
    if 'bleu' in metrics:
        from pycocoevalcap.bleu.bleu import Bleu
        bleu, _ = Bleu(4).compute_score(gts_d, res_d, verbose=0)
        scores.update({f'BLEU_{n + 1}': float(b) for n, b in enumerate(bleu)})
    if 'meteor' in metrics:
        meteor = _meteor(gts_d, res_d)
        if meteor is not None:
            scores['METEOR'] = meteor
    if 'rouge' in metrics:
        from pycocoevalcap.rouge.rouge import Rouge
        scores['ROUGE_L'] = float(Rouge().compute_score(gts_d, res_d)[0])
    if 'cider' in metrics:
        from pycocoevalcap.cider.cider import Cider
        scores['CIDEr'] = float(Cider().compute_score(gts_d, res_d)[0])
    return scores


def report_pair(sample, metric):
    """What report metrics keep of one data sample (a dict, as mmengine's
    evaluator passes them): ids, image paths, reference and generation."""
    if 'pred_report' not in sample or 'gt_report' not in sample:
        raise KeyError(f'{metric} needs `pred_report` and `gt_report` in '
                       f'each data sample (found {sorted(sample)})')
    return dict(
        study_id=sample.get('study_id'),
        img_path=list(sample.get('img_path') or []),
        gt_report=sample['gt_report'],
        pred_report=sample['pred_report'])


def resolve_out_dir(out_dir):
    """``'auto'`` -> the current run's log folder (``work_dir/<timestamp>``,
    where mmengine writes its log), so ``tools/test.py`` output lands beside
    the run's log; anything else is returned unchanged."""
    if out_dir != 'auto':
        return out_dir
    from mmengine.logging import MMLogger
    log_file = getattr(MMLogger.get_current_instance(), 'log_file', None)
    return osp.dirname(log_file) if log_file else None


def write_report_outputs(results, out_dir, name='reports'):
    """Write generated reports next to references as ``<name>.json``
    (list of dicts) and ``<name>.csv`` (study_id, img_path, gt, pred)."""
    os.makedirs(out_dir, exist_ok=True)
    json_path = osp.join(out_dir, f'{name}.json')
    with open(json_path, 'w') as f:
        json.dump(results, f, indent=1)
    with open(osp.join(out_dir, f'{name}.csv'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['study_id', 'img_path', 'gt_report', 'pred_report'])
        for r in results:
            writer.writerow([
                r['study_id'], ';'.join(r['img_path']), r['gt_report'],
                r['pred_report']
            ])
    return json_path


@METRICS.register_module()
class ReportMetric(BaseMetric):
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of generated reports.

    The metrics of R2Gen (Chen et al., EMNLP 2020): pycocoevalcap's
    ``Bleu(4)``, ``Meteor`` and ``Rouge`` on already-cleaned text (no PTB
    tokenizer), one reference per study. R2Gen vendors but never reports
    CIDEr; here ``CIDEr`` is pycocoevalcap's ``Cider``, which is the CIDEr-D
    formulation (Vedantam et al., CVPR 2015: clipped n-gram counts, Gaussian
    length penalty sigma = 6, x10) with document frequencies from the
    evaluated references. Upstream scores against references decoded from
    truncated token ids; this metric reads ``gt_report`` (the full cleaned
    report). Without Java, METEOR is skipped with a warning instead of
    crashing the run.

    Consumes data samples with ``pred_report`` and ``gt_report`` (and
    ``study_id`` / ``img_path`` when present).

    Args:
        scorers (Sequence[str]): Subset of ('bleu', 'meteor', 'rouge',
            'cider'). Defaults to all four. (Not called ``metrics``: mmengine
            builds any evaluator dict with a ``metrics`` key as an
            ``Evaluator``.)
        out_dir (str, optional): Folder for ``reports.json`` / ``reports.csv``
            (generated next to reference reports); ``'auto'`` is the run's
            log folder ``work_dir/<timestamp>``. Default None.
        collect_device (str): 'cpu' or 'gpu'. Default 'cpu'.
        prefix (str): Metric name prefix. Default 'report'.

    Example:
        >>> m = ReportMetric(scorers=('bleu', ))
        >>> m.process(None, [dict(pred_report='lungs are clear .',
        ...                       gt_report='lungs are clear .')])
        >>> round(m.evaluate(1)['report/BLEU_1'], 3)
        1.0
    """

    default_prefix = 'report'

    def __init__(self,
                 scorers=('bleu', 'meteor', 'rouge', 'cider'),
                 out_dir=None,
                 collect_device='cpu',
                 prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        unknown = set(scorers) - {'bleu', 'meteor', 'rouge', 'cider'}
        if unknown:
            raise ValueError(f'ReportMetric: unknown scorers {sorted(unknown)}'
                             "; choose from 'bleu', 'meteor', 'rouge', "
                             "'cider'")
        self.scorers = tuple(scorers)
        self.out_dir = out_dir

    def process(self, data_batch, data_samples):
        self.results.extend(
            report_pair(s, 'ReportMetric') for s in data_samples)

    def metric_keys(self):
        """Keys of ``compute_metrics`` (no prefix), for ``tools/hpo.py``."""
        names = dict(
            bleu=[f'BLEU_{n}' for n in range(1, 5)],
            meteor=['METEOR'],  # absent when Java is missing
            rouge=['ROUGE_L'],
            cider=['CIDEr'])
        return [k for s in self.scorers for k in names[s]]

    def compute_metrics(self, results):
        out_dir = resolve_out_dir(self.out_dir)
        if out_dir:
            path = write_report_outputs(results, out_dir)
            print_log(
                f'ReportMetric: wrote {len(results)} generated reports'
                f' next to references to {path} (and .csv)',
                logger='current')
        return compute_nlg_scores([r['gt_report'] for r in results],
                                  [r['pred_report'] for r in results],
                                  self.scorers)
