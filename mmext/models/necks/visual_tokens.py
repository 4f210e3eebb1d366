# Copyright (c) mmext contributors. All rights reserved.
"""Any backbone output -> visual tokens for report / VQA decoders."""
import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmext.registry import MODELS

__all__ = ['VisualTokenNeck']


@MODELS.register_module()
class VisualTokenNeck(BaseModule):
    """Turn any backbone's output into (B, N, D) visual tokens.

    R2Gen (Chen et al., EMNLP 2020) hard-codes a torchvision ResNet whose
    7x7x2048 map becomes 49 patch tokens per view; swapping in a ViT gives
    768-d tokens with a CLS token in front and breaks the 2048-d projection.
    This neck accepts every mmpretrain output form and says what it got:

    - a CNN feature map (B, C, h, w) (ResNet, SE-ResNet, TinyViT, or a ViT
      with ``out_type='featmap'``) -> h*w patch tokens, global = mean;
    - ViT tokens (B, P + N, C) (``out_type='raw'``; P = ``num_prefix_tokens``
      CLS tokens first) -> patch tokens, global = CLS;
    - a (B, C) vector (``out_type='cls_token'`` / pooled) -> one token.

    ``cls='drop'`` keeps patch tokens only, ``'keep'`` keeps the CLS token in
    front of them; ``tokens='global'`` keeps only the global token and
    ``'both'`` appends it after the patch tokens. Views of one study
    (``num_views``, IU X-ray: 2) are concatenated along N, as R2Gen does
    (98 tokens for ResNet-101 at 224). An optional Linear maps C to
    ``out_channels``; by default the channels pass through and the report
    head's ``in_channels`` is set from :attr:`out_channels`.

    Args:
        in_channels (int): Channels the backbone gives (ResNet-50/101: 2048,
            ViT-B: 768). Checked at run time with a message naming both.
        out_channels (int, optional): Project to this width with a Linear.
            Defaults to None (no projection).
        cls (str): 'drop' or 'keep' the CLS token(s). Defaults to 'drop'.
        tokens (str): 'patch', 'global' or 'both'. Defaults to 'patch'.
        num_prefix_tokens (int): CLS-like tokens in front of ViT tokens.
            Defaults to 1.
        index (int): Which backbone output to use when it returns several
            stages. Defaults to -1 (the last).
        init_cfg (dict, optional): Initialisation config. Defaults to None.

    Example:
        >>> neck = VisualTokenNeck(in_channels=768, cls='keep')
        >>> vit_raw = (torch.rand(4, 1 + 196, 768), )   # 2 studies x 2 views
        >>> tokens, global_feat = neck(vit_raw, num_views=2)
        >>> tokens.shape, global_feat.shape
        (torch.Size([2, 394, 768]), torch.Size([2, 768]))
    """

    def __init__(self,
                 in_channels,
                 out_channels=None,
                 cls='drop',
                 tokens='patch',
                 num_prefix_tokens=1,
                 index=-1,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if cls not in ('drop', 'keep'):
            raise ValueError(f"VisualTokenNeck: cls={cls!r}; use 'drop' or "
                             "'keep'")
        if tokens not in ('patch', 'global', 'both'):
            raise ValueError(f"VisualTokenNeck: tokens={tokens!r}; use "
                             "'patch', 'global' or 'both'")
        self.in_channels = in_channels
        self.out_channels = out_channels or in_channels
        self.cls = cls
        self.tokens = tokens
        self.num_prefix_tokens = num_prefix_tokens
        self.index = index
        self.proj = (
            nn.Linear(in_channels, out_channels)
            if out_channels else nn.Identity())

    def _split(self, x):
        """-> (patch (b, n, c), cls (b, p, c) or None, global (b, c))."""
        if x.dim() == 4:  # b c h w
            patch = x.flatten(2).transpose(1, 2)
            return patch, None, patch.mean(1)
        if x.dim() == 3:  # b (p + n) c
            p = self.num_prefix_tokens
            if p == 0:
                return x, None, x.mean(1)
            cls_tok, patch = x[:, :p], x[:, p:]
            return patch, cls_tok, cls_tok[:, 0]
        if x.dim() == 2:  # b c
            return x[:, None], None, x
        raise ValueError(f'VisualTokenNeck: cannot read a backbone output of '
                         f'shape {tuple(x.shape)}; expected (B, C, h, w), '
                         '(B, N, C) or (B, C)')

    def forward(self, inputs, num_views=1):
        """Args: inputs (Tensor | tuple): backbone output for B*V images
        (study-major). Returns: tokens (B, V*N, D), global (B, D) (mean over
        views)."""
        x = inputs[self.index] if isinstance(inputs, (tuple, list)) else inputs
        if isinstance(x, (tuple, list)):
            raise ValueError(
                'VisualTokenNeck: the backbone returned a nested tuple '
                "(e.g. ViT out_type='raw' with a (patch, cls) pair); use "
                "out_type='raw' (tokens) or 'featmap'")
        channels = x.size(1) if x.dim() == 4 else x.size(-1)
        if channels != self.in_channels:
            raise ValueError(
                f'VisualTokenNeck: the backbone gives {channels}-d features '
                f'but in_channels={self.in_channels}; set '
                f'model.neck.in_channels={channels}')
        patch, cls_tok, global_feat = self._split(x)
        if self.cls == 'keep':
            if cls_tok is None:
                raise ValueError(
                    "VisualTokenNeck: cls='keep' but the backbone output "
                    f'{tuple(x.shape)} has no CLS token; use a ViT with '
                    "out_type='raw' and with_cls_token=True, or cls='drop'")
            patch = torch.cat([cls_tok, patch], 1)
        if self.tokens == 'global':
            tokens = global_feat[:, None]
        elif self.tokens == 'both':
            tokens = torch.cat([patch, global_feat[:, None]], 1)
        else:
            tokens = patch
        bv, n, c = tokens.shape
        if bv % num_views:
            raise ValueError(f'VisualTokenNeck: {bv} images is not a '
                             f'multiple of num_views={num_views}')
        tokens = tokens.reshape(bv // num_views, num_views * n, c)
        global_feat = global_feat.reshape(bv // num_views, num_views,
                                          c).mean(1)
        return self.proj(tokens), self.proj(global_feat)
