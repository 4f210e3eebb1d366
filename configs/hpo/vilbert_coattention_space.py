# ViLBERT co-attention placement (the thesis' NAS, cesipy/bsc-code
# experiment_tracker.py): the number of blocks and, per stream, a centre and
# a spread; block i goes after layer round(c + s * Phi^-1((i+1)/(n+1))),
# clipped to the stream, de-duplicated, both lists cut to the shorter
# (mmext.hpo.coattention_layers). n = 0 is the no-co-attention baseline,
# which the thesis' n in [2, 8] never reached. The lists replace the
# config's preset (`preset=None`), so they are what the model builds. The
# stream depths come from the config (BERT-base 12; ViT-B/16 12, the region
# stream 6, the tiny configs' own), so one file serves the pre-training
# configs in `configs`. Placement is searched in pre-training: a fine-tuning
# config loads pre-trained co-attention blocks and must keep their placement.
#   python tools/hpo.py \
#       configs/vilbert/vilbert_vit-base-p16-bert-base_1xb20-pretrain_cc.py \
#       --space configs/hpo/vilbert_coattention_space.py --n-trials 100 \
#       --pruner median --pruner-warmup 1
from mmext.hpo.coattention import (stream_depths, suggest_coattention,
                                   vilbert_key)


def overrides(trial, cfg):
    root = vilbert_key(cfg)
    text_ids, vision_ids = suggest_coattention(
        trial, max_blocks=8, num_layers=stream_depths(cfg))
    return {
        f'{root}.coattention.preset': None,
        f'{root}.coattention.text_ids': text_ids,
        f'{root}.coattention.vision_ids': vision_ids,
    }


new_keys = ['model.coattention.text_ids', 'model.coattention.vision_ids']
configs = [
    'configs/vilbert/vilbert_vit-base-p16-bert-base_1xb20-pretrain_cc.py',
    'configs/vilbert/vilbert_regions-bert-base_1xb20-pretrain_cc.py',
    'configs/vilbert/vilbert_tiny_1xb4-pretrain_tiny-cc.py',
]
metric = 'pretrain/itm_accuracy'
direction = 'maximize'
