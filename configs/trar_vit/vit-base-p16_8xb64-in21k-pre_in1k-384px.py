# ViT-B/16 (ImageNet-21k weights) fine-tuned on ImageNet-1k at 384 px. The
# weights' 14x14 position embedding is resized to 24x24 bilinearly, as the
# reference loader does:
#   python tools/model_converters/vit_npz_to_mmext.py ViT-B_16.npz \
#       --img-size 384   (writes pretrain_pth/ViT-B_16_384.pth)
_base_ = [
    './vit-base-p16_8xb64-in21k-pre_in1k.py',
    '../_base_/datasets/vit_pipelines-384px.py',
]
model = dict(
    backbone=dict(
        img_size=384,
        init_cfg=dict(checkpoint='pretrain_pth/ViT-B_16_384.pth')))
train_dataloader = dict(
    dataset=dict(pipeline={{_base_.file_train_pipeline_384}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_.file_test_pipeline_384}}))
test_dataloader = dict(
    dataset=dict(pipeline={{_base_.file_test_pipeline_384}}))
