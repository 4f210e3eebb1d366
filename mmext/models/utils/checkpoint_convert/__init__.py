# Copyright (c) mmext contributors. All rights reserved.
"""Checkpoint converters: other code bases' weights -> mmext keys.

One module per source: torchvision / timm classifiers
(:mod:`.classification`), Google ViT ``.npz`` (:mod:`.vit_npz`), ViT-TRAR
(:mod:`.vit_trar`), R2Gen (:mod:`.r2gen`), vilbert-multi-task
(:mod:`.vilbert_multitask`) and the BUTD caffemodel (:mod:`.butd_caffe`,
imported on use: it builds on the detector package), all over the error
hierarchy, :class:`Rule` tables, unwrapping and strict check of
:mod:`.common`. The old paths ``mmext.models.multimodal.vilbert.convert``
and ``mmext.models.detectors.butd.caffe_convert`` are aliases of the same
modules. The command lines are ``tools/model_converters/*.py``.
"""
from .classification import (CONVERTERS, convert_checkpoint_file,
                             convert_timm_seresnet, convert_timm_tinyvit,
                             convert_timm_vit, convert_torchvision_resnet)
from .common import (Action, CheckpointConversionError, Rule, UnknownKeysError,
                     apply_rules, check_state_dict, compare_state_dict,
                     match_rules, rename_layernorm, strip_prefix,
                     unwrap_state_dict)
from .r2gen import (R2GenConversionError, check_r2gen_config,
                    convert_r2gen_checkpoint, convert_r2gen_state_dict,
                    load_r2gen_vocab, r2gen_head_args, r2gen_vocab_size)
from .vilbert_multitask import (ViLBERTConversionError,
                                convert_vilbert_multitask,
                                convert_vilbert_multitask_file,
                                unwrap_vilbert_checkpoint)
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
    'vit_trar_model_cfg', 'Action', 'Rule', 'UnknownKeysError', 'match_rules',
    'rename_layernorm', 'strip_prefix', 'ViLBERTConversionError',
    'convert_vilbert_multitask', 'convert_vilbert_multitask_file',
    'unwrap_vilbert_checkpoint'
]
