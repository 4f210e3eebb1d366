# Copyright (c) mmext contributors. All rights reserved.
from mmext.registry import DATASETS
from .report_dataset import R2GenReportDataset

__all__ = ['MIMICCXR']


@DATASETS.register_module()
class MIMICCXR(R2GenReportDataset):
    """MIMIC-CXR (Johnson et al., Sci. Data 2019) in R2Gen's split.

    R2Gen (Chen et al., EMNLP 2020) uses the first image of each entry
    (270790 / 2130 / 3858 train / val / test), vocabulary threshold 10 and
    reports up to 100 tokens. See :class:`R2GenReportDataset` for the
    arguments.

    Example:
        >>> from mmext.testing import make_mimic_cxr
        >>> root = make_mimic_cxr('data/mimic_tiny')
        >>> ds = MIMICCXR(str(root), split='test', tokenizer=dict(
        ...     type='R2GenTokenizer', threshold=3), pipeline=[
        ...     dict(type='LoadMultiViewImages'),
        ...     dict(type='PackReportInputs')])
        >>> ds[0]['inputs'].shape  # (1, 3, H, W) uint8
        torch.Size([1, 3, 64, 64])
    """

    DATASET_NAME = 'mimic_cxr'
    LAYOUT = ('<data_root>/annotation.json (R2Gen: {"train": [{"id": '
              '<dicom_id>, "study_id": ..., "subject_id": ..., "report": '
              '"...", "image_path": ["p10/p10000032/s50414267/<dicom_id>.jpg"'
              ']}, ...], "val": [...], "test": [...]}) and <data_root>/'
              'images/<image_path>')

    def __init__(self, data_root, num_views=1, max_seq_length=100, **kwargs):
        super().__init__(
            data_root,
            num_views=num_views,
            max_seq_length=max_seq_length,
            **kwargs)
