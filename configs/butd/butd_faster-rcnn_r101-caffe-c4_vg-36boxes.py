# The fixed 36 regions per image of the released BUTD features: the
# bottom-up-attention README recreates them with MIN_BOXES = MAX_BOXES = 36
# and the alternative snapshot resnet101_faster_rcnn_final_iter_320000
# .caffemodel (fewer training iterations than resnet101_faster_rcnn_final,
# which made the 10-100 box features). ViLBERT's regions stream reads 36.
_base_ = ['./butd_faster-rcnn_r101-caffe-c4_vg.py']

extract_cfg = dict(min_boxes=36, max_boxes=36)

# tools/model_converters/butd_caffe_to_mmext.py of the iter_320000 snapshot
load_from = 'pretrain_pth/butd_faster-rcnn_r101-caffe-c4_vg-iter320k.pth'
