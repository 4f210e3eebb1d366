# Flowers-102 training images without the near-duplicates of Flowers-17
# images that tools/dedup/find_leakage.py lists in
# data/flowers102/exclude_flowers17.txt (see data/README.md). Use it to
# pretrain on 102 before fine-tuning / testing on Flowers-17.
_base_ = ['./flowers102.py']

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ExcludeImages',
        exclude_file='data/flowers102/exclude_flowers17.txt',
        dataset=dict(
            type='Flowers102',
            data_root='data/flowers102',
            split='train',
            pipeline={{_base_.train_pipeline}})))
