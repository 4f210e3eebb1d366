# Copyright (c) mmext contributors. All rights reserved.
"""Where the weight files of ``configs/flowers/`` come from.

Registered in :data:`mmext.utils.PRETRAINED_SOURCES`, so a missing file
fails at config time with the command that produces it (kept in step with
``pretrain_pth/README.md``).
"""
from mmext.utils import PRETRAINED_SOURCES

__all__ = ['FLOWERS_WEIGHTS']

_ZOO = 'https://download.openmmlab.com/mmclassification/v0/'


def _mmpretrain(config, path):
    return (f'mim download mmpretrain --config {config} --dest pretrain_pth '
            f'(or wget {_ZOO}{path} -P pretrain_pth/); mmpretrain weights '
            'load unchanged')


#: file name -> how to get it
FLOWERS_WEIGHTS = {
    'resnet18_8xb32_in1k_20210831-fbbb1da6.pth':
    _mmpretrain('resnet18_8xb32_in1k',
                'resnet/resnet18_8xb32_in1k_20210831-fbbb1da6.pth'),
    'resnet50_8xb32_in1k_20210831-ea4938fc.pth':
    _mmpretrain('resnet50_8xb32_in1k',
                'resnet/resnet50_8xb32_in1k_20210831-ea4938fc.pth'),
    'se-resnet50_batch256_imagenet_20200804-ae206104.pth':
    _mmpretrain('seresnet50_8xb32_in1k',
                'se-resnet/se-resnet50_batch256_imagenet_'
                '20200804-ae206104.pth'),
    'tinyvit-5m_in21k-distill-pre_3rdparty_in1k_20221021-d4b010a8.pth':
    _mmpretrain('tinyvit-5m_in21k-distill-pre_3rdparty_in1k',
                'tinyvit/tinyvit-5m_in21k-distill-pre_3rdparty_in1k_'
                '20221021-d4b010a8.pth'),
    'tinyvit-11m_in21k-distill-pre_3rdparty_in1k_20221021-5d3bc0dc.pth':
    _mmpretrain('tinyvit-11m_in21k-distill-pre_3rdparty_in1k',
                'tinyvit/tinyvit-11m_in21k-distill-pre_3rdparty_in1k_'
                '20221021-5d3bc0dc.pth'),
    'tinyvit-21m_in21k-distill-pre_3rdparty_in1k_20221021-3d9b30a2.pth':
    _mmpretrain('tinyvit-21m_in21k-distill-pre_3rdparty_in1k',
                'tinyvit/tinyvit-21m_in21k-distill-pre_3rdparty_in1k_'
                '20221021-3d9b30a2.pth'),
}
PRETRAINED_SOURCES.update(FLOWERS_WEIGHTS)
