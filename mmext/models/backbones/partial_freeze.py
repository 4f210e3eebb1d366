# Copyright (c) mmext contributors. All rights reserved.
"""``PartialFreeze``: build any backbone, then freeze part of it."""
from mmengine.logging import print_log

from mmext.models.utils.freeze import count_parameters, freeze_module
from mmext.registry import MODELS

__all__ = ['PartialFreeze']


@MODELS.register_module()
def PartialFreeze(backbone,
                  frozen_stages=-1,
                  frozen_patterns=(),
                  unfreeze_patterns=(),
                  eval_frozen=True):
    """Build ``backbone`` and freeze its stem / first stages / named params.

    Fine-tuning studies (linear probe, partial and full fine-tuning, e.g.
    Kornblith et al., "Do Better ImageNet Models Transfer Better?", CVPR
    2019) need the same freezing control for every backbone. mmpretrain's
    per-backbone ``frozen_stages`` differ in meaning, TinyViT's leaves
    ``patch_embed`` trainable, and none freezes by name. This builder returns
    the real backbone object (not a wrapper), so its state-dict keys,
    ``init_cfg`` Pretrained loading, ``get_layer_depth`` and ``isinstance``
    checks are unchanged; see :func:`mmext.models.utils.freeze_module` for
    the rules. Pair it with ``constructor='TrainableOptimWrapperConstructor'``
    so frozen parameters stay out of the optimizer.

    Args:
        backbone (dict): Config of the backbone (any registered type). Do not
            set the backbone's own ``frozen_stages``.
        frozen_stages (int | str): -1 none, 0 stem, k stem + first k stages,
            ``'all'`` everything. Defaults to -1.
        frozen_patterns (Sequence[str]): Parameter-name globs (or
            ``'re:<regex>'``) to freeze as well. Defaults to ().
        unfreeze_patterns (Sequence[str]): Names kept trainable anyway.
            Defaults to ().
        eval_frozen (bool): Keep fully frozen sub-modules (norms, dropout)
            in eval mode across ``train()``. Defaults to True.

    Returns:
        nn.Module: The backbone, partially frozen.

    Example:
        >>> import torch
        >>> from mmext.registry import MODELS
        >>> vit = MODELS.build(dict(
        ...     type='PartialFreeze', frozen_stages=1,
        ...     backbone=dict(type='VisionTransformer', img_size=32,
        ...                   patch_size=8, arch=dict(embed_dims=32,
        ...                   num_layers=2, num_heads=2,
        ...                   feedforward_channels=64))))
        >>> type(vit).__name__, vit(torch.rand(2, 3, 32, 32))[0].shape
        ('VisionTransformer', torch.Size([2, 32]))
        >>> vit.layers[0].ln1.weight.requires_grad, vit.layers[1].training
        (False, True)
    """
    if not isinstance(backbone, dict):
        raise TypeError('PartialFreeze: backbone must be a config dict, got '
                        f'{type(backbone).__name__}')
    if 'frozen_stages' in backbone:
        raise ValueError(
            f"PartialFreeze: remove frozen_stages from the {backbone['type']}"
            ' config and set it on PartialFreeze (the backbone\'s own rule '
            'differs per class and would be applied on top)')
    module = MODELS.build(backbone)
    frozen = freeze_module(module, frozen_stages, frozen_patterns,
                           unfreeze_patterns, eval_frozen)
    trainable, total = count_parameters(module)
    print_log(
        f'PartialFreeze: {type(module).__name__} frozen_stages='
        f'{frozen_stages!r}: {len(frozen)} tensors frozen, {trainable:,} of '
        f'{total:,} parameters trainable',
        logger='current')
    return module
