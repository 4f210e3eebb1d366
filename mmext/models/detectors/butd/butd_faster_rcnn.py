# Copyright (c) mmext contributors. All rights reserved.
"""BUTD: the Visual Genome Faster R-CNN of bottom-up attention, in PyTorch.

Anderson et al., "Bottom-Up and Top-Down Attention for Image Captioning and
Visual Question Answering", CVPR 2018. The published weights are a caffe
``resnet101_faster_rcnn_final.caffemodel``; the PyTorch ports that exist
run on detectron2 and change the numbers (clamped box deltas, re-centred
anchors, background moved to the last class, torchvision NMS). This model
is plain PyTorch + ``torchvision.ops`` and follows the caffe network and
py-faster-rcnn's test code operation by operation (see ``box_ops``,
``rpn``, ``roi_head``, ``preprocess``), so converted weights
(``tools/model_converters/butd_caffe_to_mmext.py``) give the caffe regions.
"""
import numpy as np
import torch
from mmengine.model import BaseModel

from mmext.registry import MODELS
from .box_ops import clip_boxes, decode_boxes
from .preprocess import PIXEL_MEANS_BGR, caffe_preprocess
from .resnet_caffe import CaffeResNetC4
from .roi_head import BUTDRoIHead
from .rpn import BUTDRPNHead, propose

__all__ = ['BUTDFasterRCNN', 'image_to_input']

_TEST_CFG = dict(
    target_size=600,
    max_size=1000,
    pixel_means=PIXEL_MEANS_BGR,
    resize_backend='auto',
    pre_nms_top_n=6000,
    post_nms_top_n=300,
    rpn_nms_thresh=0.7,
    rpn_min_size=16,
    roi_chunk_size=50)


def image_to_input(img_bgr, test_cfg=None):
    """One BGR image -> ``(x, scale, image_hw)``: the (1, 3, H', W') float32
    network input (:func:`caffe_preprocess` with the ``target_size``,
    ``max_size``, ``pixel_means`` and ``resize_backend`` of ``test_cfg``,
    defaults as :class:`BUTDFasterRCNN`), its scale and the original
    (H, W). Needs no model, so data-loader workers can run it."""
    cfg = dict(_TEST_CFG, **(test_cfg or {}))
    image_hw = tuple(int(s) for s in np.asarray(img_bgr).shape[:2])
    x, scale = caffe_preprocess(img_bgr, cfg['target_size'], cfg['max_size'],
                                cfg['pixel_means'], cfg['resize_backend'])
    return x, scale, image_hw


@MODELS.register_module()
class BUTDFasterRCNN(BaseModel):
    """Caffe-exact BUTD Faster R-CNN (ResNet C4, VG 1600 objects / 400
    attributes), inference only.

    Args:
        stage_blocks (Sequence[int]): Blocks of res2..res5. Defaults to
            ``(3, 4, 23, 3)`` (ResNet-101).
        base_channels (int): Stem width (64 for ResNet-101). Defaults to 64.
        rpn_channels (int): ``rpn_conv/3x3`` width. Defaults to 512.
        num_classes (int): Objects incl. background (index 0). Defaults to
            1601.
        num_attributes (int): Attributes incl. "no attribute" (index 0).
            Defaults to 401.
        attr_embed_dims (int): Defaults to 256.
        attr_hidden (int): Defaults to 512.
        anchor_scales (Sequence[int]): Defaults to ``(4, 8, 16, 32)``.
        anchor_ratios (Sequence[float]): Defaults to ``(0.5, 1, 2)``.
        test_cfg (dict, optional): Overrides of ``target_size`` (600),
            ``max_size`` (1000), ``pixel_means``, ``resize_backend``
            ('auto'), ``pre_nms_top_n`` (6000), ``post_nms_top_n`` (300),
            ``rpn_nms_thresh`` (0.7), ``rpn_min_size`` (16),
            ``roi_chunk_size`` (50: ROIs per res5 call, bounds memory;
            None = all at once).
        init_cfg (dict, optional): Defaults to None.

    Example:
        >>> model = BUTDFasterRCNN((1, 1, 1, 1), base_channels=8,
        ...                        rpn_channels=16).eval()
        >>> out = model.predict_image(np.zeros((60, 80, 3), np.uint8))
        >>> out['features'].shape[1], out['cls_prob'].shape[1]
        (256, 1601)
    """

    def __init__(self,
                 stage_blocks=(3, 4, 23, 3),
                 base_channels=64,
                 rpn_channels=512,
                 num_classes=1601,
                 num_attributes=401,
                 attr_embed_dims=256,
                 attr_hidden=512,
                 anchor_scales=(4, 8, 16, 32),
                 anchor_ratios=(0.5, 1, 2),
                 test_cfg=None,
                 data_preprocessor=None,
                 init_cfg=None):
        if isinstance(data_preprocessor, dict):
            # mmext's registry (BaseModel would use mmengine's)
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if len(stage_blocks) != 4:
            raise ValueError('BUTDFasterRCNN: stage_blocks needs 4 numbers '
                             f'(res2..res5), got {tuple(stage_blocks)}')
        unknown = set(test_cfg or {}) - set(_TEST_CFG)
        if unknown:
            raise ValueError(f'BUTDFasterRCNN: unknown test_cfg keys '
                             f'{sorted(unknown)}; known: {sorted(_TEST_CFG)}')
        self.stage_blocks = tuple(stage_blocks)
        self.test_cfg = dict(_TEST_CFG, **(test_cfg or {}))
        self.backbone = CaffeResNetC4(stage_blocks[:3], base_channels)
        c4 = self.backbone.out_channels
        self.rpn_head = BUTDRPNHead(c4, rpn_channels, anchor_scales,
                                    anchor_ratios)
        self.roi_head = BUTDRoIHead(c4, base_channels * 8, stage_blocks[3],
                                    num_classes, num_attributes,
                                    attr_embed_dims, attr_hidden)

    # stages, separately callable (benchmarks/butd_extract.py times them)
    def forward_rpn(self, feats, im_hw, im_scale):
        """Proposals (R, 4) in input pixels and their fg probabilities."""
        cfg = self.test_cfg
        logits, deltas = self.rpn_head(feats)
        return propose(
            torch.sigmoid(logits[0]), deltas[0], self.rpn_head.anchors, im_hw,
            im_scale, self.rpn_head.feat_stride, cfg['pre_nms_top_n'],
            cfg['post_nms_top_n'], cfg['rpn_nms_thresh'], cfg['rpn_min_size'])

    def forward_roi(self, feats, proposals, im_scale, image_hw):
        """Features, class / attribute probabilities and per-class boxes."""
        rois = torch.cat([proposals.new_zeros(len(proposals), 1), proposals],
                         dim=1)
        pooled = self.roi_head.pool_features(feats, rois,
                                             self.test_cfg['roi_chunk_size'])
        cls_score, attr_score, deltas = self.roi_head.predict(pooled)
        # reference: boxes = rois / im_scale, decoded and clipped in the
        # original image (fast_rcnn/test.py im_detect)
        boxes = proposals / im_scale
        cls_boxes = clip_boxes(decode_boxes(boxes, deltas), *image_hw)
        return dict(
            rois=boxes,
            features=pooled,
            cls_prob=torch.softmax(cls_score, dim=1),
            attr_prob=torch.softmax(attr_score, dim=1),
            cls_boxes=cls_boxes.view(len(boxes), -1, 4))

    def preprocess_image(self, img_bgr):
        """The network input of one BGR image: ``(x, scale, image_hw)``
        (:func:`image_to_input` with this model's ``test_cfg``)."""
        return image_to_input(img_bgr, self.test_cfg)

    @torch.no_grad()
    def predict_image(self, img_bgr):
        """Run the detector on one BGR image (``cv2.imread`` order).

        Returns:
            dict: ``rois`` (R, 4) un-regressed proposals in image pixels
            (what generate_tsv writes as boxes), ``rpn_scores`` (R,),
            ``features`` (R, 2048) pool5, ``cls_prob`` (R, C), ``attr_prob``
            (R, M), ``cls_boxes`` (R, C, 4) class-specific regressed boxes,
            ``image_hw`` and ``im_scale``.
        """
        return self.predict_preprocessed(*self.preprocess_image(img_bgr))

    @torch.no_grad()
    def predict_preprocessed(self, x, scale, image_hw):
        """:meth:`predict_image` after preprocessing, so that decoding and
        :func:`image_to_input` can run elsewhere (data-loader workers).

        Args:
            x (Tensor): (1, 3, H', W') from :func:`image_to_input`, on any
                device (moved to the model's).
            scale (float): Its resize factor.
            image_hw (tuple[int, int]): The original image size.

        Returns:
            dict: As :meth:`predict_image`.
        """
        x = x.to(self.rpn_head.anchors.device)
        feats = self.backbone(x)
        proposals, scores = self.forward_rpn(feats, tuple(x.shape[-2:]), scale)
        out = self.forward_roi(feats, proposals, scale, image_hw)
        out.update(rpn_scores=scores, image_hw=image_hw, im_scale=scale)
        return out

    def extract_feat(self, inputs):
        """res4 (C4) features (B, 1024, H/16, W/16) of preprocessed images
        (B, 3, H, W) (what mmpretrain's get_flops counts as the model)."""
        return self.backbone(inputs)

    def forward_tensor(self, inputs):
        """The detector on preprocessed images, as tensors only.

        Args:
            inputs (Tensor): (B, 3, H, W) caffe-preprocessed images (BGR,
                pixel means subtracted, already resized: scale 1).

        Returns:
            list[dict]: Per image ``rois``, ``features``, ``cls_prob``,
            ``attr_prob``, ``cls_boxes`` (as :meth:`predict_image`) and
            ``rpn_scores``. mmengine's FLOP counter traces this path
            (``forward(x, mode='tensor')``); NMS is not counted.
        """
        feats = self.backbone(inputs)
        hw = tuple(int(s) for s in inputs.shape[-2:])
        outs = []
        for i in range(inputs.size(0)):
            proposals, scores = self.forward_rpn(feats[i:i + 1], hw, 1.0)
            out = self.forward_roi(feats[i:i + 1], proposals, 1.0, hw)
            out['rpn_scores'] = scores
            outs.append(out)
        return outs

    def forward(self, inputs, data_samples=None, mode='predict'):
        """``inputs``: a list of BGR images; returns one dict each
        (:meth:`predict_image`). ``mode='tensor'``: a (B, 3, H, W)
        preprocessed batch through :meth:`forward_tensor`. Training is not
        implemented: the model exists to reproduce the released caffe
        weights."""
        if mode == 'tensor':
            return self.forward_tensor(inputs)
        if mode == 'loss':
            raise NotImplementedError(
                'BUTDFasterRCNN is inference-only (caffe-exact feature '
                'extraction); train with the caffe / detectron2 code')
        if isinstance(inputs, np.ndarray) and inputs.ndim == 3:
            inputs = [inputs]
        return [self.predict_image(img) for img in inputs]
