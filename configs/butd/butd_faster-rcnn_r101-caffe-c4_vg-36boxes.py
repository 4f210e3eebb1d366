# The fixed 36 regions per image of the released BUTD features
# (bottom-up-attention README: MIN_BOXES = MAX_BOXES = 36), the setting
# ViLBERT's regions stream reads.
_base_ = ['./butd_faster-rcnn_r101-caffe-c4_vg.py']

extract_cfg = dict(min_boxes=36, max_boxes=36)
