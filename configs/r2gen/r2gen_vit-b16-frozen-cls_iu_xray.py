# As r2gen_vit-b16-frozen_iu_xray.py but the CLS token is kept in front of
# each view's patch tokens (197 per view, 394 per study).
_base_ = ['./r2gen_vit-b16-frozen_iu_xray.py']
model = dict(neck=dict(cls='keep'))
