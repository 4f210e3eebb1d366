# A smoke run of region extraction without any weights: the BUTD network
# shrunk (one block per stage, 8 base channels -> 256-d region features) and
# the 36-box selection, run with random weights:
#   python tools/feature_extraction/extract_regions.py \
#       configs/butd/butd_faster-rcnn_tiny_random-init-smoke.py \
#       --random-init --images data/images --out work_dirs/regions_smoke
# About a second per image on one CPU core. The regions are meaningless; the
# output files (npz / TSV / image_ids.csv) have the real layout (1601-class
# cls_prob, 401 attributes), so readers and pipelines can be checked.
_base_ = ['./butd_faster-rcnn_r101-caffe-c4_vg-36boxes.py']

model = dict(
    stage_blocks=(1, 1, 1, 1),
    base_channels=8,
    rpn_channels=16,
    attr_embed_dims=16,
    attr_hidden=32,
    test_cfg=dict(target_size=200, max_size=320, post_nms_top_n=100))

extract_cfg = dict(formats=['npz', 'tsv'])
load_from = None  # --random-init
