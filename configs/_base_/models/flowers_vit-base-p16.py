# ViT-B/16 (Google ImageNet-21k weights, pretrain_pth/ViT-B_16.pth from
# tools/model_converters/vit_npz_to_mmext.py) for Flowers-17, wrapped in
# PartialFreeze: frozen_stages=k freezes patch_embed, cls_token, pos_embed and
# the first k of 12 blocks; 12 or 'all' the whole backbone (linear probe).
_base_ = ['./vit-base-p16_in21k-pre.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='PartialFreeze',
        frozen_stages=-1,
        backbone={{_base_.model.backbone}}),
    head=dict(num_classes=17, topk=(1, 5)))
