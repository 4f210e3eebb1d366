# ViLBERT co-attention placement (the thesis' NAS, cesipy/bsc-code
# experiment_tracker.py): the number of blocks and, per stream, a centre and
# a spread; block i goes after layer round(c + s * Phi^-1((i+1)/(n+1))),
# clipped to the stream, de-duplicated, both lists cut to the shorter
# (mmext.hpo.coattention_layers). n = 0 is the no-co-attention baseline,
# which the thesis' n in [2, 8] never reached. The lists replace the
# config's preset (`preset=None`), so they are what the model builds.
#   python tools/hpo.py \
#       configs/vilbert/vilbert_vit-base-p16-bert-base_1xb20-pretrain_cc.py \
#       --space configs/hpo/vilbert_coattention_space.py --n-trials 100 \
#       --pruner median --pruner-warmup 1
from mmext.hpo import suggest_coattention

# (text, vision) depths: BERT-base and ViT-B/16; (12, 6) for
# configs/vilbert/vilbert_regions-bert-base_1xb20-pretrain_cc.py
NUM_LAYERS = (12, 12)


def overrides(trial):
    text_ids, vision_ids = suggest_coattention(
        trial, max_blocks=8, num_layers=NUM_LAYERS)
    return {
        'model.coattention.preset': None,
        'model.coattention.text_ids': text_ids,
        'model.coattention.vision_ids': vision_ids,
    }


new_keys = ['model.coattention.text_ids', 'model.coattention.vision_ids']
metric = 'pretrain/itm_accuracy'
direction = 'maximize'
