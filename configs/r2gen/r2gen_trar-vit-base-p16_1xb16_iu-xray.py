# TRAR-ViT-B/16 (soft span routing over orders 0-3, from the ImageNet-21k
# ViT-B/16 weights) fine-tuned as the visual extractor.
_base_ = ['./r2gen_vit-base-p16_1xb16_iu-xray.py']
model = dict(backbone=dict(type='TRARViT', orders=[0, 1, 2, 3]))
