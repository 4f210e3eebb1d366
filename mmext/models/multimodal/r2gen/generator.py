# Copyright (c) mmext contributors. All rights reserved.
"""R2Gen-style report generator: backbone -> visual-token neck -> decoder."""
import copy
from typing import Dict, List, Optional, Union

import torch
from mmengine.model import BaseModel
from mmpretrain.structures import DataSample

from mmext.registry import MODELS, TOKENIZER
from .data_preprocessor import pad_tokens
from .tokenizer import R2GenTokenizer

__all__ = ['R2GenReportGenerator']


@MODELS.register_module()
class R2GenReportGenerator(BaseModel):
    """Radiology report generator with any backbone as visual extractor.

    The architecture of *Generating Radiology Reports via Memory-driven
    Transformer* (Chen et al., EMNLP 2020): each view of a study goes through
    the backbone, :class:`~mmext.models.necks.VisualTokenNeck` turns the
    outputs into tokens and concatenates the views, and the head
    (:class:`R2GenHead`) encodes them and generates the report. R2Gen wires a
    torchvision ResNet-101 with 2048-d features into its code; here the
    backbone is any registered one (ResNet-101, ViT-B/16, TRAR-ViT, TinyViT,
    SE-ResNet) and the head's input width follows the neck, so swapping the
    backbone is a config change. Decoding is batched, incremental and
    device-agnostic (see :mod:`mmext.models.multimodal.r2gen.decoding`).

    Args:
        backbone (dict): Backbone config (wrap it in ``PartialFreeze`` to
            freeze some or all of it).
        neck (dict): :class:`VisualTokenNeck` config.
        head (dict): :class:`R2GenHead` config; ``vocab_size`` is taken from
            the tokenizer and ``in_channels`` from the neck when not given.
        tokenizer (dict | object): ``R2GenTokenizer`` config or instance.
        data_preprocessor (dict, optional): Default
            ``ReportDataPreprocessor`` without normalisation.
        max_seq_length (int): Tokens generated at most. Defaults to 60.
        decode (dict): ``strategy`` ('beam' | 'greedy'), ``beam_size``,
            ``length_penalty`` ('' | 'wu_<a>' | 'avg_1'), ``block_trigrams``,
            ``trigram_penalty``, ``early_stop``. Defaults to R2Gen's beam 3.
        freeze (dict, optional): Shortcut for wrapping the backbone in
            ``PartialFreeze`` with these arguments, e.g.
            ``dict(frozen_stages='all')``. Defaults to None.
        init_cfg (dict, optional): Initialisation config. Defaults to None.

    Example:
        >>> from mmext.models.multimodal.r2gen import R2GenReportGenerator
        >>> model = R2GenReportGenerator(
        ...     backbone=dict(type='ResNet', depth=18, out_indices=(3, )),
        ...     neck=dict(type='VisualTokenNeck', in_channels=512),
        ...     head=dict(type='R2GenHead', d_model=32, d_ff=32,
        ...               num_layers=1, num_heads=4, rm_num_heads=4,
        ...               rm_d_model=32),
        ...     tokenizer=dict(type='R2GenTokenizer',
        ...                    vocab=['.', '<unk>', 'heart', 'normal']),
        ...     max_seq_length=8)
        >>> images = torch.rand(2, 2, 3, 64, 64)   # B studies, V views
        >>> model(images, mode='tensor').shape     # generated token ids
        torch.Size([2, 8])
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 tokenizer: Union[dict, R2GenTokenizer],
                 data_preprocessor: Optional[dict] = None,
                 max_seq_length: int = 60,
                 decode: dict = dict(strategy='beam', beam_size=3),
                 freeze: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='ReportDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            # build from mmext's registry (BaseModel would use mmengine's)
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.tokenizer = (
            TOKENIZER.build(tokenizer)
            if isinstance(tokenizer, dict) else tokenizer)
        if freeze:
            backbone = dict(type='PartialFreeze', backbone=backbone, **freeze)
        self.backbone = MODELS.build(backbone)
        neck = dict(neck)
        if hasattr(self.backbone, 'num_extra_tokens'):
            # ViT-style token outputs: CLS (DeiT: + distillation) in front,
            # none when with_cls_token=False
            neck.setdefault('num_prefix_tokens',
                            self.backbone.num_extra_tokens)
        self.neck = MODELS.build(neck)
        head = copy.deepcopy(head)
        head['vocab_size'] = self.tokenizer.vocab_size
        in_channels = head.setdefault('in_channels', self.neck.out_channels)
        if in_channels != self.neck.out_channels:
            raise ValueError(
                f'R2GenReportGenerator: the neck gives '
                f'{self.neck.out_channels}-d tokens but head.in_channels='
                f'{in_channels}; remove head.in_channels (it follows the '
                'neck) or set neck.out_channels')
        self.head = MODELS.build(head)
        self.max_seq_length = max_seq_length
        self.decode_cfg = dict(decode)

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, V, 3, H, W) -> visual tokens (B, V*N, C)."""
        if inputs.dim() == 4:
            inputs = inputs.unsqueeze(1)
        b, v = inputs.shape[:2]
        feats = self.backbone(inputs.flatten(0, 1))
        tokens, _ = self.neck(feats, num_views=v)
        return tokens

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            feats = self.extract_feat(inputs)
            if data_samples and 'gt_tokens' in data_samples[0]:
                tokens, _ = pad_tokens(data_samples, inputs.device)
                return self.head(feats, tokens)
            return self.generate(feats)
        raise RuntimeError(f'Invalid mode "{mode}"; use loss, predict or '
                           'tensor')

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """R2Gen's LanguageModelCriterion: mean NLL over the real tokens
        (including the final EOS) of every report in the batch."""
        tokens, mask = pad_tokens(data_samples, inputs.device)
        logprobs = self.head(self.extract_feat(inputs), tokens)
        target, mask = tokens[:, 1:], mask[:, 1:].to(logprobs.dtype)
        nll = -logprobs.gather(2, target.unsqueeze(2)).squeeze(2)
        return dict(loss=(nll * mask).sum() / mask.sum())

    def generate(self, feats: torch.Tensor) -> torch.Tensor:
        cfg = dict(self.decode_cfg)
        return self.head.generate(
            feats,
            max_len=self.max_seq_length,
            strategy=cfg.pop('strategy', 'beam'),
            beam_size=cfg.pop('beam_size', 3),
            **cfg)

    def predict(
            self,
            inputs: torch.Tensor,
            data_samples: Optional[List[DataSample]] = None
    ) -> List[DataSample]:
        """Sets ``pred_tokens`` (LongTensor, up to the end) and
        ``pred_report`` (str) on every data sample; ``pred_caption`` holds
        the same text, the field mmpretrain's ``ImageCaptionInferencer`` and
        caption visualiser read."""
        seqs = self.generate(self.extract_feat(inputs))
        if data_samples is None:
            data_samples = [DataSample() for _ in range(seqs.size(0))]
        for sample, seq in zip(data_samples, seqs.cpu()):
            ids = seq.tolist()
            end = ids.index(0) if 0 in ids else len(ids)
            sample.set_field(
                torch.tensor(ids[:end], dtype=torch.long),
                'pred_tokens',
                field_type='data')
            report = self.tokenizer.decode(ids)
            sample.set_field(report, 'pred_report', field_type='metainfo')
            sample.set_field(report, 'pred_caption', field_type='metainfo')
        return data_samples
