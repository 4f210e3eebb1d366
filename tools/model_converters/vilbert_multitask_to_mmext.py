# Copyright (c) mmext contributors. All rights reserved.
"""Convert a vilbert-multi-task checkpoint to an mmext ViLBERT (regions).

``pretrained_model.bin`` / ``multi_task_model.bin`` of
facebookresearch/vilbert-multi-task (``bert_base_6layer_6conect.json``)
become an mmext checkpoint for ``load_from`` of a regions-mode ViLBERT
config or ``model.vilbert.init_cfg=dict(type='Pretrained', checkpoint=...)``
of a ViLBERTClassifier. The mapping and what cannot be mapped:
:mod:`mmext.models.utils.checkpoint_convert.vilbert_multitask`.

Example::

    python tools/model_converters/vilbert_multitask_to_mmext.py \\
        pretrained_model.bin pretrain_pth/vilbert-multi-task_cc_mmext.pth \\
        --config configs/vilbert/vilbert_regions-bert-base_1xb20-pretrain_cc.py
"""
import argparse
import sys

from mmext.models.utils.checkpoint_convert import (
    ViLBERTConversionError, convert_vilbert_multitask_file)
from mmext.utils import CorruptCheckpointError, UnsafeCheckpointError


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument(
        'src',
        help='vilbert-multi-task checkpoint '
        '(pretrained_model.bin, multi_task_model.bin, ...)')
    p.add_argument('dst', help='output mmext checkpoint (.pth)')
    p.add_argument(
        '--config',
        help='mmext regions-mode ViLBERT / '
        'ViLBERTClassifier config: every key and shape is '
        'checked against its model before anything is written')
    p.add_argument(
        '--reference-config',
        help="the reference's JSON config "
        '(config/bert_base_6layer_6conect.json): heads and '
        'co-attention ids are checked against --config')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        sd = convert_vilbert_multitask_file(args.src, args.dst, args.config,
                                            args.reference_config)
    except (ViLBERTConversionError, FileNotFoundError, CorruptCheckpointError,
            UnsafeCheckpointError) as e:
        print(f'vilbert_multitask_to_mmext: {e}', file=sys.stderr)
        return 1
    print(f'wrote {args.dst}: {len(sd)} tensors')
    return 0


if __name__ == '__main__':
    sys.exit(main())
