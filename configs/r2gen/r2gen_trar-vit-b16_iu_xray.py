# TRAR-ViT-B/16 (soft span routing over orders 0-3, from the ImageNet-21k
# ViT-B/16 weights) fine-tuned as the visual extractor.
_base_ = ['./r2gen_vit-b16-finetune_iu_xray.py']
model = dict(backbone=dict(type='TRARViT', orders=[0, 1, 2, 3]))
