# Copyright (c) mmext contributors. All rights reserved.
"""Batching of multi-view studies and their token sequences."""
from typing import Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseDataPreprocessor
from mmpretrain.structures import DataSample

from mmext.registry import MODELS

__all__ = ['ReportDataPreprocessor', 'pad_tokens']


def pad_tokens(
    data_samples: Sequence[DataSample],
    device: Union[str, torch.device, None] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pad every sample's ``gt_tokens`` with 0 -> (tokens, mask), (B, T).

    The mask is 1 on the real tokens including the final EOS. It cannot be
    read off the tokens because BOS, EOS and pad are all id 0 in R2Gen.
    """
    seqs = [s.gt_tokens for s in data_samples]
    length = max(len(s) for s in seqs)
    tokens = torch.zeros(len(seqs), length, dtype=torch.long)
    mask = torch.zeros(len(seqs), length)
    for i, s in enumerate(seqs):
        tokens[i, :len(s)] = torch.as_tensor(s)
        mask[i, :len(s)] = 1
    return tokens.to(device), mask.to(device)


@MODELS.register_module()
class ReportDataPreprocessor(BaseDataPreprocessor):
    """Stack multi-view studies to (B, V, 3, H, W) float and normalise.

    mmpretrain's ``ClsDataPreprocessor`` expects one image per sample; a
    report study has V views (IU X-ray: 2). Token padding happens in the
    model (:func:`pad_tokens`), which needs the lengths for R2Gen's mask.

    Args:
        mean (Sequence[float], optional): Per-channel mean (0-255 scale).
            Defaults to None (no normalisation).
        std (Sequence[float], optional): Per-channel std. Defaults to None.
        to_rgb (bool): Flip BGR to RGB (set it when images are loaded with
            ``channel_order='bgr'``). Defaults to False.
        non_blocking (bool): Non-blocking device transfer. Defaults to False.

    Example:
        >>> pre = ReportDataPreprocessor(mean=[128] * 3, std=[64] * 3)
        >>> data = dict(inputs=[torch.zeros(2, 3, 8, 8, dtype=torch.uint8)],
        ...             data_samples=None)
        >>> pre(data)['inputs'].shape, pre(data)['inputs'].flatten()[0].item()
        (torch.Size([1, 2, 3, 8, 8]), -2.0)
    """

    def __init__(self,
                 mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None,
                 to_rgb: bool = False,
                 non_blocking: bool = False):
        super().__init__(non_blocking)
        self.to_rgb = to_rgb
        self._enable_normalize = mean is not None
        if self._enable_normalize:
            if std is None:
                raise ValueError('ReportDataPreprocessor: mean given without '
                                 'std')
            self.register_buffer('mean',
                                 torch.tensor(mean).view(1, 1, -1, 1, 1),
                                 False)
            self.register_buffer('std',
                                 torch.tensor(std).view(1, 1, -1, 1, 1), False)

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs = data['inputs']
        if isinstance(inputs, (list, tuple)):
            shapes = {tuple(x.shape) for x in inputs}
            if len(shapes) > 1:
                raise ValueError(
                    'ReportDataPreprocessor: studies in a batch differ in '
                    f'shape {sorted(shapes)}; resize every view to one size '
                    'in the pipeline')
            inputs = torch.stack(list(inputs))
        if inputs.dim() == 4:  # b 3 h w: single view
            inputs = inputs.unsqueeze(1)
        inputs = inputs.float()
        if self.to_rgb:
            inputs = inputs.flip(2)
        if self._enable_normalize:
            inputs = (inputs - self.mean) / self.std
        return dict(inputs=inputs, data_samples=data.get('data_samples'))
