# Copyright (c) mmext contributors. All rights reserved.
"""Per-sample routing weights over attention spans (TRAR)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

__all__ = ['SpanRouter', 'gumbel_softmax']

ROUTING_MODES = ('soft', 'hard')
POOLING_MODES = ('avg', 'fc', 'attention')


def gumbel_softmax(logits, tau, straight_through=False):
    """Gumbel-softmax over the last dim, as TRAR's ``HardRoutingBlock``.

    The reference adds Gumbel noise to ``log_softmax(logits)`` (not to the
    raw logits) and divides by the temperature; torch's
    :func:`F.gumbel_softmax` uses the raw logits, which changes the noise's
    relative scale, so it is not reused here.

    Args:
        logits (Tensor): (B, L) routing logits.
        tau (float): Temperature (> 0).
        straight_through (bool): Forward the one-hot argmax, backward the
            soft gradient. Defaults to False.
    """
    gumbels = -torch.empty_like(logits).exponential_().log()
    soft = F.softmax((logits.log_softmax(-1) + gumbels) / tau, dim=-1)
    if not straight_through:
        return soft
    hard = F.one_hot(soft.argmax(-1), soft.size(-1)).to(soft.dtype)
    return hard - soft.detach() + soft


class SpanRouter(BaseModule):
    """Predict per-sample weights α over L attention spans from tokens.

    `TRAR: Routing the Attention Spans in Transformer for Visual Question
    Answering <https://openaccess.thecvf.com/content/ICCV2021/html/Zhou_TRAR_
    Routing_the_Attention_Spans_in_Transformer_for_Visual_Question_ICCV_2021_
    paper.html>`_ (Zhou et al., ICCV 2021) pools the layer input over tokens,
    maps it with ``Linear(C, C/r, bias=False) -> ReLU -> Linear(C/r, L)`` and
    takes a softmax (soft routing) or a Gumbel-softmax (hard routing).

    What the reference lacks and this adds: a ``fc`` pooling (one linear
    score per token), a straight-through option, no Gumbel noise at eval
    (the reference samples noise at eval too), and ``binarize`` as an option
    rather than always on at eval.

    Args:
        embed_dims (int): Token dimension C.
        num_spans (int): Number of spans L.
        routing (str): ``'soft'`` or ``'hard'``. Defaults to ``'soft'``.
        pooling (str): ``'avg'`` (mean over tokens), ``'fc'`` (softmax of a
            linear score per token) or ``'attention'`` (the reference's
            ``AttFlat``: MLP scores, softmax, merge, LayerNorm).
            Defaults to ``'avg'``.
        reduction (int): Hidden width C / reduction. Defaults to 2.
        binarize (bool): At eval, replace α by the one-hot argmax.
            Defaults to False.
        straight_through (bool): Hard routing forwards one-hot α in
            training (soft gradients). Defaults to False.
        tau (float): Initial Gumbel temperature (set by
            ``TRARTemperatureHook``). Defaults to 1.0.
        init_cfg (dict, optional): Initialization config. Defaults to None.

    Example:
        >>> router = SpanRouter(64, num_spans=4, routing='hard')
        >>> router(torch.rand(2, 17, 64)).shape
        torch.Size([2, 4])
    """

    def __init__(self,
                 embed_dims,
                 num_spans,
                 routing='soft',
                 pooling='avg',
                 reduction=2,
                 binarize=False,
                 straight_through=False,
                 tau=1.0,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if routing not in ROUTING_MODES:
            raise ValueError(f'SpanRouter: routing={routing!r} is not one of '
                             f'{ROUTING_MODES}')
        if pooling not in POOLING_MODES:
            raise ValueError(f'SpanRouter: pooling={pooling!r} is not one of '
                             f'{POOLING_MODES}')
        self.routing = routing
        self.pooling = pooling
        self.binarize = binarize
        self.straight_through = straight_through
        self.tau = float(tau)
        if pooling == 'fc':
            self.score = nn.Linear(embed_dims, 1)
        elif pooling == 'attention':
            # the reference's AttFlat (one glimpse, dropout 0.1)
            self.score = nn.Sequential(
                nn.Linear(embed_dims, embed_dims), nn.ReLU(inplace=True),
                nn.Dropout(0.1), nn.Linear(embed_dims, 1))
            self.merge = nn.Linear(embed_dims, embed_dims)
            self.norm = nn.LayerNorm(embed_dims, eps=1e-6)
        hidden = embed_dims // reduction
        self.mlp = nn.Sequential(
            nn.Linear(embed_dims, hidden, bias=False), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_spans))

    def pool(self, x):
        """(B, N, C) tokens -> (B, C) summary."""
        if self.pooling == 'avg':
            return x.mean(dim=1)
        weights = self.score(x).softmax(dim=1)  # b n 1
        pooled = (weights * x).sum(dim=1)
        if self.pooling == 'attention':
            pooled = self.norm(self.merge(pooled))
        return pooled

    def forward(self, x):
        """Return α of shape (B, L); rows sum to 1."""
        logits = self.mlp(self.pool(x)).float()
        if self.routing == 'hard' and self.training:
            alpha = gumbel_softmax(logits, self.tau, self.straight_through)
        elif self.routing == 'hard':
            # no noise at eval: the noiseless Gumbel-softmax
            alpha = F.softmax(logits.log_softmax(-1) / self.tau, dim=-1)
        else:
            alpha = F.softmax(logits, dim=-1)
        if self.binarize and not self.training:
            alpha = F.one_hot(alpha.argmax(-1), alpha.size(-1)).to(alpha)
        return alpha
