# MIMIC-CXR in R2Gen's split and recipe (data/mimic_cxr/annotation.json +
# images/; see data/README.md). The first view of each entry is used.
_base_ = ['./iu_xray.py']

dataset_type = 'MIMICCXR'
data_root = 'data/mimic_cxr'
tokenizer = dict(
    type='R2GenTokenizer',
    ann_file=data_root + '/annotation.json',
    threshold=10,
    dataset='mimic_cxr',
    clean_mode='r2gen')
max_seq_length = 100

train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        tokenizer=tokenizer,
        max_seq_length=max_seq_length))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        tokenizer=tokenizer,
        max_seq_length=max_seq_length))
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        tokenizer=tokenizer,
        max_seq_length=max_seq_length))

val_evaluator = [
    dict(type='ReportMetric'),
    dict(type='ClinicalEfficacyMetric'),
]
# tools/test.py also writes res.csv / gts.csv for the official labeler
test_evaluator = [
    dict(type='ReportMetric', out_dir='auto'),
    dict(type='ClinicalEfficacyMetric', out_dir='auto'),
]
