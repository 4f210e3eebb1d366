# Flowers-102 training images, checked when the data set is built against
# every Flowers-17 test image of the official splits 1..3: a near-duplicate
# (perceptual hash, mirror-aware) stops the run with the pairs it found.
# on_leak='filter' drops them instead, 'warn' only logs them. Hashes are
# cached, so a second run hashes only new or changed files.
_base_ = ['./flowers102.py']

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ExcludeImages',
        dataset=dict(
            type='Flowers102',
            data_root='data/flowers102',
            split='train',
            pipeline={{_base_.train_pipeline}}),
        heldout=[
            dict(
                type='Flowers17',
                data_root='data/flowers17',
                split='test',
                split_id=1),
            dict(
                type='Flowers17',
                data_root='data/flowers17',
                split='test',
                split_id=2),
            dict(
                type='Flowers17',
                data_root='data/flowers17',
                split='test',
                split_id=3),
        ],
        on_leak='error',
        hash_cfg=dict(cache_file='work_dirs/hash_cache/flowers.sqlite')))
