# Copyright (c) mmext contributors. All rights reserved.
"""Device transfer and image normalisation of ViLBERT batches."""
from typing import Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from mmext.registry import MODELS

__all__ = ['ViLBERTDataPreprocessor']


@MODELS.register_module()
class ViLBERTDataPreprocessor(BaseDataPreprocessor):
    """Normalise the image views of a :func:`vilbert_collate` batch.

    mmpretrain's preprocessors expect one image tensor per batch; a ViLBERT
    batch is a dict of tensors (tokens, one or two views, patch masks,
    regions). ``img`` and ``img_masked`` are cast to float, flipped to RGB
    if asked and normalised; then the patches ``patch_mask`` marks are set
    to 0 in ``img_masked`` (the mean colour after normalisation; the thesis
    code zeroes raw pixels of an already-normalised tensor and rescales it
    to 0-255, a bug).

    Args:
        mean (Sequence[float], optional): 0-255 scale. Defaults to None.
        std (Sequence[float], optional): Defaults to None.
        to_rgb (bool): BGR -> RGB. Defaults to True (images are loaded BGR).
        non_blocking (bool): Defaults to False.

    Example:
        >>> pre = ViLBERTDataPreprocessor(mean=[128] * 3, std=[64] * 3)
        >>> img = torch.full((1, 3, 4, 4), 192, dtype=torch.uint8)
        >>> out = pre(dict(inputs=dict(img=img, img_masked=img,
        ...     patch_mask=torch.tensor([[True, False, False, False]]))))
        >>> out['inputs']['img'][0, 0, 0, 0].item()
        1.0
        >>> out['inputs']['img_masked'][0, 0, :, :2].tolist()  # 2 x 2 patches
        [[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
    """

    def __init__(self,
                 mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None,
                 to_rgb: bool = True,
                 non_blocking: bool = False) -> None:
        super().__init__(non_blocking)
        self.to_rgb = to_rgb
        if (mean is None) != (std is None):
            raise ValueError('ViLBERTDataPreprocessor: give both mean and '
                             'std, or neither')
        self.normalize = mean is not None
        if self.normalize:
            self.register_buffer('mean',
                                 torch.tensor(mean).view(-1, 1, 1), False)
            self.register_buffer('std',
                                 torch.tensor(std).view(-1, 1, 1), False)

    def _image(self, img: torch.Tensor) -> torch.Tensor:
        img = img.float()
        if self.to_rgb and img.size(1) == 3:
            img = img.flip(1)
        if self.normalize:
            img = (img - self.mean) / self.std
        return img

    def forward(self, data: dict, training: bool = False) -> dict:
        """Move the batch to the device, normalise ``img`` /
        ``img_masked`` and zero the masked patches of ``img_masked``."""
        data = self.cast_data(data)
        inputs = dict(data['inputs'])
        for key in ('img', 'img_masked'):
            if key in inputs:
                inputs[key] = self._image(inputs[key])
        if 'img_masked' in inputs and 'patch_mask' in inputs:
            inputs['img_masked'] = self.mask_patches(inputs['img_masked'],
                                                     inputs['patch_mask'])
        return dict(inputs=inputs, data_samples=data.get('data_samples'))

    @staticmethod
    def mask_patches(img: torch.Tensor,
                     patch_mask: torch.Tensor) -> torch.Tensor:
        """Zero the masked patches: img (B, C, H, W), mask (B, N) on a
        square-patch grid with N = (H / p) * (W / p)."""
        b, _, h, w = img.shape
        n = patch_mask.size(1)
        p = int(round((h * w / n)**0.5))
        if p == 0 or (h // p) * (w // p) != n:
            raise ValueError(f'ViLBERTDataPreprocessor: a {n}-patch mask '
                             f'does not tile a {h}x{w} image')
        grid = patch_mask.view(b, 1, h // p, w // p).to(img.dtype)
        keep = 1 - grid.repeat_interleave(p, 2).repeat_interleave(p, 3)
        return img * keep
