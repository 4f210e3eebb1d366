# Copyright (c) mmext contributors. All rights reserved.
from mmext.registry import DATASETS
from .report_dataset import R2GenReportDataset

__all__ = ['IUXray']


@DATASETS.register_module()
class IUXray(R2GenReportDataset):
    """IU X-ray (Demner-Fushman et al., JAMIA 2016) in R2Gen's split.

    R2Gen (Chen et al., EMNLP 2020) uses the two views (frontal, lateral) of
    each study as one sample: 2069 / 296 / 590 train / val / test studies.
    See :class:`R2GenReportDataset` for the arguments; ``num_views`` is 2.

    Example:
        >>> from mmext.testing import make_iu_xray
        >>> root = make_iu_xray('data/iu_tiny')
        >>> ds = IUXray(str(root), split='train', tokenizer=dict(
        ...     type='R2GenTokenizer', threshold=3), pipeline=[
        ...     dict(type='LoadMultiViewImages'),
        ...     dict(type='PackReportInputs')])
        >>> ds[0]['inputs'].shape  # (views, 3, H, W) uint8
        torch.Size([2, 3, 64, 64])
    """

    DATASET_NAME = 'iu_xray'
    LAYOUT = ('<data_root>/annotation.json (R2Gen: {"train": [{"id": '
              '"CXR2384_IM-0942", "report": "...", "image_path": '
              '["CXR2384_IM-0942/0.png", "CXR2384_IM-0942/1.png"]}, ...], '
              '"val": [...], "test": [...]}) and <data_root>/images/'
              '<id>/0.png, 1.png')

    def __init__(self, data_root, num_views=2, max_seq_length=60, **kwargs):
        super().__init__(
            data_root,
            num_views=num_views,
            max_seq_length=max_seq_length,
            **kwargs)
