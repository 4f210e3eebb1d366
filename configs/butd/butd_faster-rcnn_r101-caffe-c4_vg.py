# BUTD (bottom-up attention) Faster R-CNN, ResNet-101 C4, Visual Genome
# 1600 objects / 400 attributes: the caffe model of
# peteanderson80/bottom-up-attention converted to mmext (caffe-exact
# inference; see configs/butd/README.md). Inference / feature extraction
# only: tools/feature_extraction/extract_regions.py.
_base_ = ['../_base_/default_runtime.py']

default_scope = 'mmext'

model = dict(
    type='BUTDFasterRCNN',
    stage_blocks=(3, 4, 23, 3),
    base_channels=64,
    rpn_channels=512,
    num_classes=1601,  # index 0 = __background__
    num_attributes=401,  # index 0 = __no_attribute__
    attr_embed_dims=256,
    attr_hidden=512,
    anchor_scales=(4, 8, 16, 32),
    anchor_ratios=(0.5, 1, 2),
    test_cfg=dict(
        target_size=600,
        max_size=1000,
        resize_backend='auto',
        pre_nms_top_n=6000,
        post_nms_top_n=300,
        rpn_nms_thresh=0.7,
        rpn_min_size=16,
        roi_chunk_size=50))

# region selection of tools/generate_tsv.py (10-100 boxes per image)
extract_cfg = dict(
    nms_thresh=0.3,
    conf_thresh=0.2,
    min_boxes=10,
    max_boxes=100,
    formats=['npz'],
    save_cls_prob=True)

# written by tools/model_converters/butd_caffe_to_mmext.py
load_from = 'pretrain_pth/butd_faster-rcnn_r101-caffe-c4_vg.pth'
