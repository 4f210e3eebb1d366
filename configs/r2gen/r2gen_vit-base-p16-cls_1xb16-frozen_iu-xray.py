# As r2gen_vit-base-p16_1xb16-frozen_iu-xray.py but the CLS token is kept in
# front of each view's patch tokens (197 per view, 394 per study).
_base_ = ['./r2gen_vit-base-p16_1xb16-frozen_iu-xray.py']
model = dict(neck=dict(cls='keep'))
