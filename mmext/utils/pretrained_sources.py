# Copyright (c) mmext contributors. All rights reserved.
"""Where every weight file a shipped config names comes from.

One table, file name -> how to obtain it, read by
:func:`mmext.utils.resolve_pretrained_paths` so a missing file fails at
config time with the command that produces it. Kept in step with
``pretrain_pth/README.md``; a new config that names a new file adds its row
here.
"""

__all__ = ['PRETRAINED_SOURCES']

_ZOO = 'https://download.openmmlab.com/mmclassification/v0/'


def _mmpretrain(config, path):
    return (f'mim download mmpretrain --config {config} --dest pretrain_pth '
            f'(or wget {_ZOO}{path} -P pretrain_pth/); mmpretrain weights '
            'load unchanged')


_VIT_NPZ = ('download https://storage.googleapis.com/vit_models/imagenet21k/'
            'ViT-B_16.npz, then run python tools/model_converters/'
            'vit_npz_to_mmext.py ViT-B_16.npz')

#: file name -> how to get it
PRETRAINED_SOURCES = {
    # configs/flowers: mmpretrain's ImageNet weights
    'resnet18_8xb32_in1k_20210831-fbbb1da6.pth':
    _mmpretrain('resnet18_8xb32_in1k',
                'resnet/resnet18_8xb32_in1k_20210831-fbbb1da6.pth'),
    'resnet50_8xb32_in1k_20210831-ea4938fc.pth':
    _mmpretrain('resnet50_8xb32_in1k',
                'resnet/resnet50_8xb32_in1k_20210831-ea4938fc.pth'),
    'se-resnet50_batch256_imagenet_20200804-ae206104.pth':
    _mmpretrain(
        'seresnet50_8xb32_in1k', 'se-resnet/se-resnet50_batch256_imagenet_'
        '20200804-ae206104.pth'),
    'tinyvit-5m_in21k-distill-pre_3rdparty_in1k_20221021-d4b010a8.pth':
    _mmpretrain(
        'tinyvit-5m_in21k-distill-pre_3rdparty_in1k',
        'tinyvit/tinyvit-5m_in21k-distill-pre_3rdparty_in1k_'
        '20221021-d4b010a8.pth'),
    'tinyvit-11m_in21k-distill-pre_3rdparty_in1k_20221021-5d3bc0dc.pth':
    _mmpretrain(
        'tinyvit-11m_in21k-distill-pre_3rdparty_in1k',
        'tinyvit/tinyvit-11m_in21k-distill-pre_3rdparty_in1k_'
        '20221021-5d3bc0dc.pth'),
    'tinyvit-21m_in21k-distill-pre_3rdparty_in1k_20221021-3d9b30a2.pth':
    _mmpretrain(
        'tinyvit-21m_in21k-distill-pre_3rdparty_in1k',
        'tinyvit/tinyvit-21m_in21k-distill-pre_3rdparty_in1k_'
        '20221021-3d9b30a2.pth'),
    # configs/trar_vit, configs/flowers ViT, R2Gen ViT backbones
    'ViT-B_16.pth':
    _VIT_NPZ,
    'ViT-B_16_384.pth':
    _VIT_NPZ + ' --img-size 384',
    # configs/_base_/models/r2gen_resnet101.py
    'resnet101-63fe2227.pth':
    'wget https://download.pytorch.org/models/resnet101-63fe2227.pth -P '
    'pretrain_pth/ (torchvision ImageNet weights, what R2Gen loads with '
    'pretrained=True; mmpretrain ResNet reads their keys unchanged)',
    # configs/vilbert patches mode
    'vit-base-p16_timm-in21k-ft-in1k.pth':
    'save timm.create_model("vit_base_patch16_224", pretrained=True)'
    '.state_dict() (the thesis code\'s ViT) with torch.save, then python '
    'tools/model_converters/convert_to_mmpretrain.py timm-vit <file> '
    'pretrain_pth/vit-base-p16_timm-in21k-ft-in1k.pth',
    # configs/butd (load_from)
    'butd_faster-rcnn_r101-caffe-c4_vg.pth':
    'download https://storage.googleapis.com/up-down-attention/'
    'resnet101_faster_rcnn_final.caffemodel, then python '
    'tools/model_converters/butd_caffe_to_mmext.py '
    'resnet101_faster_rcnn_final.caffemodel '
    'pretrain_pth/butd_faster-rcnn_r101-caffe-c4_vg.pth --config '
    'configs/butd/butd_faster-rcnn_r101-caffe-c4_vg.py (see '
    'configs/butd/README.md)',
    # configs/butd/*-36boxes.py: the snapshot of the released 36-box features
    'butd_faster-rcnn_r101-caffe-c4_vg-iter320k.pth':
    'download https://storage.googleapis.com/bottom-up-attention/'
    'resnet101_faster_rcnn_final_iter_320000.caffemodel, then python '
    'tools/model_converters/butd_caffe_to_mmext.py '
    'resnet101_faster_rcnn_final_iter_320000.caffemodel '
    'pretrain_pth/butd_faster-rcnn_r101-caffe-c4_vg-iter320k.pth --config '
    'configs/butd/butd_faster-rcnn_r101-caffe-c4_vg-36boxes.py (see '
    'configs/butd/README.md)',
}
