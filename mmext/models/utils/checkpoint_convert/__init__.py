# Copyright (c) mmext contributors. All rights reserved.
"""Checkpoint converters: other code bases' weights -> mmext keys.

One module per source: torchvision / timm classifiers
(:mod:`.classification`), Google ViT ``.npz`` (:mod:`.vit_npz`), ViT-TRAR
(:mod:`.vit_trar`) and R2Gen (:mod:`.r2gen`), over the shared renaming and
strict-check helpers of :mod:`.common`. The ViLBERT and BUTD converters live
with their models (:mod:`mmext.models.multimodal.vilbert.convert`,
:mod:`mmext.models.detectors.butd.caffe_convert`). The command lines are
``tools/model_converters/*.py``.
"""
from .classification import (CONVERTERS, convert_checkpoint_file,
                             convert_timm_seresnet, convert_timm_tinyvit,
                             convert_timm_vit, convert_torchvision_resnet)
from .common import (CheckpointConversionError, apply_rules, check_state_dict,
                     compare_state_dict, unwrap_state_dict)
from .r2gen import (R2GenConversionError, check_r2gen_config,
                    convert_r2gen_checkpoint, convert_r2gen_state_dict,
                    load_r2gen_vocab, r2gen_head_args, r2gen_vocab_size)
from .vit_npz import (NpzKeyError, convert_vit_npz, convert_vit_npz_file,
                      default_npz_dst, load_vit_npz, resize_grid, vit_npz_arch)
from .vit_trar import (convert_vit_trar, convert_vit_trar_checkpoint,
                       vit_trar_model_cfg)

__all__ = [
    'CONVERTERS', 'convert_checkpoint_file', 'convert_torchvision_resnet',
    'convert_timm_seresnet', 'convert_timm_vit', 'convert_timm_tinyvit',
    'CheckpointConversionError', 'apply_rules', 'check_state_dict',
    'compare_state_dict', 'unwrap_state_dict', 'R2GenConversionError',
    'check_r2gen_config', 'convert_r2gen_checkpoint',
    'convert_r2gen_state_dict', 'load_r2gen_vocab', 'r2gen_head_args',
    'r2gen_vocab_size', 'NpzKeyError', 'convert_vit_npz',
    'convert_vit_npz_file', 'default_npz_dst', 'load_vit_npz', 'resize_grid',
    'vit_npz_arch', 'convert_vit_trar', 'convert_vit_trar_checkpoint',
    'vit_trar_model_cfg'
]
