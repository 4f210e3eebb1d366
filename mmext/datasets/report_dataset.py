# Copyright (c) mmext contributors. All rights reserved.
"""Shared loader of R2Gen's ``annotation.json`` (IU X-ray, MIMIC-CXR)."""
import os.path as osp

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mmext.registry import TOKENIZER, TRANSFORMS
from .validation import AnnotationError, load_r2gen_annotation

__all__ = ['R2GenReportDataset', 'AnnotationError']


class R2GenReportDataset(BaseDataset):
    """A split of an R2Gen ``annotation.json`` as report-generation samples.

    Base of :class:`IUXray` and :class:`MIMICCXR` (Chen et al., "Generating
    Radiology Reports via Memory-driven Transformer", EMNLP 2020). Each
    sample carries its views' paths, the token ids (``[0] + ids + [0]``
    truncated to ``max_seq_length`` as R2Gen trains on) and the full cleaned
    report. Upstream evaluates against reports decoded from the *truncated*
    ids (``<unk>`` instead of rare words, the end cut off); here metrics get
    the full cleaned text. Upstream also crashes on a missing image in the
    middle of an epoch; here missing views are found at load time, reported
    in one warning line with their count, and their studies skipped. The
    whole annotation file is checked when the data set is built, before the
    tokenizer reads it (:func:`validation.load_r2gen_annotation`: unreadable
    JSON, ``report: null`` or empty, too few image paths, a study in two
    splits, an empty train split): upstream fails mid-run or trains on it.

    The tokenizer's vocabulary is put into ``metainfo['vocab']`` so that
    mmengine stores it in every checkpoint (``meta['dataset_meta']``).

    Args:
        data_root (str): Data set folder.
        ann_file (str): Annotation file, relative to ``data_root``.
            Default 'annotation.json'.
        split (str): 'train', 'val' or 'test'. Default 'train'.
        tokenizer (dict | R2GenTokenizer): Tokenizer or its config; without
            ``vocab`` and ``ann_file`` it is built from this annotation
            file's train split.
        max_seq_length (int): Token ids kept per report (BOS included).
        pipeline (list[dict]): Transforms.
        img_prefix (str): Image folder relative to ``data_root``.
            Default 'images'.
        num_views (int): Views used per study (first ``num_views`` paths).
        check_images (bool): Skip studies whose images are missing (with a
            warning). Default True.
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset`.
    """

    DATASET_NAME = None
    LAYOUT = ('<data_root>/annotation.json ({"train": [...], "val": [...], '
              '"test": [...]}) and <data_root>/images/<image_path>')

    def __init__(self,
                 data_root,
                 ann_file='annotation.json',
                 split='train',
                 tokenizer=None,
                 max_seq_length=60,
                 pipeline=(),
                 img_prefix='images',
                 num_views=1,
                 check_images=True,
                 **kwargs):
        self.split = split
        self.max_seq_length = max_seq_length
        self.num_views = num_views
        self.check_images = check_images
        ann_path = ann_file if osp.isabs(ann_file) else osp.join(
            data_root, ann_file)
        # the vocabulary is counted on this file's train reports
        vocab_from_file = tokenizer is None or (
            isinstance(tokenizer, dict) and tokenizer.get('vocab') is None
            and osp.abspath(tokenizer.get('ann_file')
                            or ann_path) == osp.abspath(ann_path))
        self._annotation = load_r2gen_annotation(
            ann_path,
            type(self).__name__,
            num_views,
            need_train=vocab_from_file,
            layout=self.LAYOUT)
        if split not in self._annotation:
            raise AnnotationError(
                f'{type(self).__name__}: {ann_path} has no split {split!r} '
                f'(found {sorted(self._annotation)}); expected keys '
                "'train', 'val', 'test'")
        if not self._annotation[split]:
            raise AnnotationError(
                f'{type(self).__name__}: {ann_path} split {split!r} is '
                'empty; add its studies or use another split')
        self.tokenizer = self._build_tokenizer(tokenizer, ann_path)
        metainfo = dict(
            vocab=list(self.tokenizer.vocab),
            tokenizer=dict(
                type=type(self.tokenizer).__name__,
                dataset=self.tokenizer.dataset,
                clean_mode=self.tokenizer.clean_mode,
                threshold=self.tokenizer.threshold))
        metainfo.update(kwargs.pop('metainfo', None) or {})
        # built from mmext's registry so the data set also works outside a
        # runner (mmengine's Compose looks in mmengine's registry only)
        pipeline = [
            TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline
        ]
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            metainfo=metainfo,
            data_prefix=dict(img_path=img_prefix),
            pipeline=pipeline,
            **kwargs)

    def _build_tokenizer(self, tokenizer, ann_path):
        if tokenizer is None:
            tokenizer = dict(type='R2GenTokenizer')
        if not isinstance(tokenizer, dict):
            return tokenizer
        tokenizer = dict(tokenizer)
        tokenizer.setdefault('dataset', self.DATASET_NAME)
        if tokenizer.get('vocab') is None and \
                tokenizer.get('ann_file') is None:
            tokenizer['ann_file'] = ann_path
            tokenizer.pop('data_root', None)
        return TOKENIZER.build(tokenizer)

    def load_data_list(self):
        """The split's studies (the file was checked at construction)."""
        ann, self._annotation = self._annotation, None
        if ann is None:  # loaded again: re-read and re-check
            ann = load_r2gen_annotation(self.ann_file,
                                        type(self).__name__, self.num_views)
        img_root = self.data_prefix['img_path']
        data_list, missing = [], []
        for i, entry in enumerate(ann[self.split]):
            sid = entry.get('id', f'#{i}')
            report = entry['report']
            paths = entry['image_path']
            paths = [osp.join(img_root, p) for p in paths[:self.num_views]]
            if self.check_images:
                lost = [p for p in paths if not osp.isfile(p)]
                if lost:
                    missing.append((sid, lost[0]))
                    continue
            cleaned = self.tokenizer.clean(report)
            data_list.append(
                dict(
                    study_id=sid,
                    img_path=paths,
                    gt_report=cleaned,
                    gt_tokens=self.tokenizer.encode_cleaned(cleaned)
                    [:self.max_seq_length]))
        if missing and not data_list:
            raise FileNotFoundError(
                f'{type(self).__name__}: the images of all {len(missing)} '
                f'{self.split} studies of {self.ann_file} are missing under '
                f'{img_root}, e.g. {missing[0][1]}; expected layout: '
                f'{self.LAYOUT}')
        if missing:
            first = ', '.join(f'{sid} ({p})' for sid, p in missing[:3])
            print_log(
                f'{type(self).__name__}: skipped {len(missing)} of '
                f'{len(ann[self.split])} {self.split} studies with missing '
                f'images, e.g. {first}',
                logger='current',
                level=30)
        self.num_skipped = len(missing)
        return data_list
