# ViT fine-tuning on Flowers: the flowers schedule with the ViT reference
# optimizer settings (SGD, no weight decay, gradient-norm clip 1.0; lr 1e-2 at
# batch 32 where the reference uses 3e-2 at batch 512, not tuned here)
# and layer-wise lr decay 0.75 (block i of 12 gets lr * 0.75 ** (12 - i);
# patch_embed / cls_token / pos_embed the smallest, the head the full lr).
_base_ = ['./flowers_sgd_warmup-cosine-tail.py']

optim_wrapper = dict(
    optimizer=dict(lr=1e-2, weight_decay=0.0),
    clip_grad=dict(max_norm=1.0),
    paramwise_cfg=dict(layer_decay_rate=0.75))
