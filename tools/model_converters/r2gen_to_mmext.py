# Copyright (c) mmext contributors. All rights reserved.
"""Convert an R2Gen checkpoint (zhjohnchan/R2Gen) to an mmext checkpoint.

R2Gen checkpoints do not contain their vocabulary: give the training
``annotation.json`` (``--ann-file``, rebuilt as R2Gen does) or a JSON token
list (``--vocab-file``). The result carries it in
``meta['dataset_meta']['vocab']``. The conversion is
:mod:`mmext.models.utils.checkpoint_convert.r2gen`.

Example::

    python tools/model_converters/r2gen_to_mmext.py \\
        model_iu_xray.pth pretrain_pth/r2gen_iu_xray_mmext.pth \\
        --ann-file data/iu_xray/annotation.json --dataset iu_xray \\
        --config configs/r2gen/r2gen_resnet101_1xb16_iu-xray.py
"""
import argparse
import sys

from mmext.models.utils.checkpoint_convert import (R2GenConversionError,
                                                   convert_r2gen_checkpoint,
                                                   load_r2gen_vocab)
from mmext.utils import CorruptCheckpointError, UnsafeCheckpointError


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src', help='R2Gen checkpoint (model_iu_xray.pth, ...)')
    p.add_argument('dst', help='output mmext checkpoint')
    p.add_argument(
        '--ann-file',
        help='annotation.json the model was '
        'trained on (vocabulary = its train split)')
    p.add_argument('--vocab-file', help='JSON list of tokens (ids 1..V)')
    p.add_argument(
        '--dataset', default='iu_xray', choices=['iu_xray', 'mimic_cxr'])
    p.add_argument(
        '--threshold',
        type=int,
        default=None,
        help='min token count (default 3 iu_xray, 10 mimic_cxr)')
    p.add_argument('--clean-mode', default='r2gen', choices=['r2gen', 'fixed'])
    p.add_argument(
        '--config',
        help='mmext config to load the result into '
        'strictly (checks every key and shape)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        vocab = load_r2gen_vocab(args.ann_file, args.vocab_file, args.dataset,
                                 args.threshold, args.clean_mode)
        sd = convert_r2gen_checkpoint(args.src, args.dst, vocab, args.config)
    except (R2GenConversionError, FileNotFoundError, CorruptCheckpointError,
            UnsafeCheckpointError) as e:
        print(f'r2gen_to_mmext: {e}', file=sys.stderr)
        return 1
    print(f'wrote {args.dst}: {len(sd)} tensors, vocabulary {len(vocab)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
