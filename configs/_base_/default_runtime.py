# defaults to use registries in mmext (which fall back to mmpretrain, mmengine)
default_scope = 'mmext'
# Loading the config registers mmext's types (in mmext's registries and, where
# the name is free, in mmpretrain's), so mmpretrain.apis.get_model, the
# Inferencers and `mim run mmpretrain <tool>` work on mmext configs unchanged.
# Same list as mmext.utils.setup_env.REGISTERING_MODULES.
custom_imports = dict(
    imports=[
        'mmext.datasets', 'mmext.engine', 'mmext.evaluation', 'mmext.models',
        'mmext.visualization'
    ],
    allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
    # mmext: RNG states in checkpoints, so --resume continues exactly
    rng_state=dict(type='RNGStateHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # mmext switches to gloo by itself when there is no GPU
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
