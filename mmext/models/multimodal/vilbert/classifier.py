# Copyright (c) mmext contributors. All rights reserved.
"""ViLBERT fine-tuning: the fused pooled streams -> an MLP -> task logits."""
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmpretrain.structures import DataSample

from mmext.registry import MODELS

__all__ = ['ViLBERTClassifier']

_TASKS = ('binary', 'multilabel', 'multiclass')
# 'hadamard' is the thesis code's name for the product (its config spelled
# it "hardamard", so the option silently returned None there)
_FUSION_ALIASES = dict(
    product='mul',
    hadamard='mul',
    mul='mul',
    sum='sum',
    concat='concat',
    text='text')


@MODELS.register_module()
class ViLBERTClassifier(BaseModel):
    """A ViLBERT with a classification head, for Hateful Memes (binary),
    MM-IMDb (23 genres, multi-label) and UPMC Food-101 (101 classes).

    The two pooled streams are fused (``concat`` as the thesis code,
    ``product`` / ``sum`` as ViLBERT) and fed to ``Linear(fused, hidden) ->
    ReLU -> Dropout -> Linear(hidden, C)`` (the thesis code's head). Losses:
    ``binary`` BCE with ``pos_weight`` (negatives / positives, as the thesis
    code weights Hateful Memes), ``multilabel`` BCE, ``multiclass`` CE.
    Pre-training heads of the wrapped model are switched off; its weights
    (e.g. a CC pre-training checkpoint) load through ``init_cfg`` /
    ``load_from`` with the ``vilbert.`` prefix.

    Args:
        vilbert (dict): :class:`ViLBERT` config; its ``losses`` are ignored.
        num_classes (int): Logits (1 for binary).
        task (str): 'binary', 'multilabel' or 'multiclass'.
        fusion (str): 'concat', 'product' (alias 'hadamard', 'mul'),
            'sum' or 'text'. Defaults to 'concat'.
        hidden_dims (int): MLP width. Defaults to 512.
        dropout (float): Dropout in the MLP. Defaults to 0.1.
        pos_weight (float, optional): BCE weight of positives (binary /
            multi-label). Defaults to None.
        data_preprocessor (dict, optional): Defaults to the ViLBERT one.
        init_cfg (dict, optional): Initialisation config.

    Example:
        >>> # logits of shape (B, num_classes) from inputs as ViLBERT's
        >>> # feats = model(inputs, mode='tensor')  # (B, C)
    """

    def __init__(self,
                 vilbert: dict,
                 num_classes: int,
                 task: str,
                 fusion: str = 'concat',
                 hidden_dims: int = 512,
                 dropout: float = 0.1,
                 pos_weight: Optional[float] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if task not in _TASKS:
            raise ValueError(f'ViLBERTClassifier: task={task!r}; use one of '
                             f'{_TASKS}')
        if fusion not in _FUSION_ALIASES:
            raise ValueError(
                f'ViLBERTClassifier: fusion={fusion!r}; use one of '
                f'{sorted(_FUSION_ALIASES)}')
        if task == 'binary' and num_classes != 1:
            raise ValueError('ViLBERTClassifier: a binary task has one logit '
                             f'(num_classes=1), got {num_classes}')
        vilbert = dict(vilbert)
        vilbert.update(
            fusion=_FUSION_ALIASES[fusion],
            losses=dict(mlm=0, itm=0, mim=0, mrm=0))
        data_preprocessor = data_preprocessor or vilbert.pop(
            'data_preprocessor', None) or dict(type='ViLBERTDataPreprocessor')
        vilbert.pop('data_preprocessor', None)
        if isinstance(data_preprocessor, dict):
            # mmext's registry (BaseModel would use mmengine's)
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        vilbert.setdefault('type', 'ViLBERT')
        self.vilbert = MODELS.build(vilbert)
        self.task, self.num_classes = task, num_classes
        self.head = nn.Sequential(
            nn.Linear(self.vilbert.fused_dims, hidden_dims), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(hidden_dims, num_classes))
        # mmpretrain's loss: BCE with pos_weight for binary / multi-label,
        # CE for multi-class (mean over the batch, as before)
        self.loss_module = MODELS.build(
            dict(
                type='mmpretrain.CrossEntropyLoss',
                use_sigmoid=task != 'multiclass',
                pos_weight=None if pos_weight is None else float(pos_weight)))

    def extract_feat(self, inputs: dict) -> torch.Tensor:
        """The fused pooled streams (B, ``vilbert.fused_dims``)."""
        return self.vilbert.extract_feat(inputs)['fused']

    def forward(
        self,
        inputs: dict,
        data_samples: Optional[List[DataSample]] = None,
        mode: str = 'tensor'
    ) -> Union[torch.Tensor, Dict[str, torch.Tensor], List[DataSample]]:
        """``'tensor'``: logits (B, num_classes); ``'loss'``: a dict of
        losses; ``'predict'``: data samples with ``pred_score`` /
        ``pred_label``."""
        if mode == 'tensor':
            return self.head(self.extract_feat(inputs))
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'ViLBERTClassifier: invalid mode {mode!r}; use '
                           'tensor, loss or predict')

    def _targets(self, data_samples, device):
        if any('gt_label' not in s for s in data_samples):
            raise ValueError('ViLBERTClassifier: a training sample has no '
                             'gt_label (is a test file without labels in '
                             'the training set?)')
        if self.task == 'multiclass':
            return torch.stack(
                [s.gt_label.reshape(-1)[0] for s in data_samples]).to(device)
        if self.task == 'binary':
            return torch.stack([
                s.gt_label.reshape(-1)[0] for s in data_samples
            ]).float().to(device)[:, None]
        target = torch.zeros(
            len(data_samples), self.num_classes, device=device)
        for row, s in zip(target, data_samples):
            row[s.gt_label.long()] = 1
        return target

    def loss(self, inputs: dict,
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """The task loss (BCE or CE) against the samples' ``gt_label``."""
        logits = self(inputs).float()
        target = self._targets(data_samples, logits.device)
        return dict(loss=self.loss_module(logits, target))

    @torch.no_grad()
    def predict(self,
                inputs: dict,
                data_samples: Optional[List[DataSample]] = None
                ) -> List[DataSample]:
        """``pred_score``: sigmoid (binary: one column; multi-label) or
        softmax scores; ``pred_label``: argmax / scores >= 0.5."""
        return self.predict_from_logits(self(inputs), data_samples)

    def predict_from_logits(
            self,
            logits: torch.Tensor,
            data_samples: Optional[List[DataSample]] = None
    ) -> List[DataSample]:
        """:meth:`predict` on logits already computed (e.g. by an
        inferencer that also keeps the per-layer features of the same
        forward)."""
        logits = logits.float()
        scores = (
            logits.softmax(-1)
            if self.task == 'multiclass' else logits.sigmoid())
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(scores))]
        for sample, score in zip(data_samples, scores):
            sample.set_pred_score(score)
            if self.task == 'multiclass':
                sample.set_pred_label(score.argmax(-1, keepdim=True))
            elif self.task == 'binary':
                sample.set_pred_label((score >= 0.5).long())
            else:
                sample.set_pred_label(torch.nonzero(score >= 0.5).flatten())
        return data_samples
