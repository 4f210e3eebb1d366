# IU X-ray in R2Gen's split and recipe (data/iu_xray/annotation.json +
# images/; see data/README.md). Both views of a study form one sample.
dataset_type = 'IUXray'
data_root = 'data/iu_xray'

# One tokenizer definition for the data sets and the model (the model config
# uses `tokenizer` too). Built from the train split at training time; test
# and inference take the vocabulary from the checkpoint.
tokenizer = dict(
    type='R2GenTokenizer',
    ann_file=data_root + '/annotation.json',
    threshold=3,
    dataset='iu_xray',
    clean_mode='r2gen')  # 'fixed' for corrected cleaning (not comparable)
max_seq_length = 60

# images are loaded as RGB (R2Gen: PIL .convert('RGB')), ImageNet statistics
data_preprocessor = dict(
    type='ReportDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375])

# R2Gen: Resize(256) (short side), RandomCrop(224), horizontal flip; test
# Resize((224, 224)); each view independently, PIL resampling as torchvision
train_pipeline = [
    dict(type='LoadMultiViewImages'),
    dict(
        type='ApplyToViews',
        transforms=[
            dict(type='ResizeEdge', scale=256, edge='short', backend='pillow'),
            dict(type='RandomCrop', crop_size=224),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        ]),
    dict(type='PackReportInputs'),
]
test_pipeline = [
    dict(type='LoadMultiViewImages'),
    dict(
        type='ApplyToViews',
        transforms=[
            dict(type='Resize', scale=(224, 224), backend='pillow'),
        ]),
    dict(type='PackReportInputs'),
]

train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        tokenizer=tokenizer,
        max_seq_length=max_seq_length,
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        tokenizer=tokenizer,
        max_seq_length=max_seq_length,
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_dataloader = dict(
    val_dataloader, dataset=dict(val_dataloader['dataset'], split='test'))
val_evaluator = dict(type='ReportMetric')
# tools/test.py: reports.json / reports.csv (generated next to reference)
# in work_dir/<timestamp>/
test_evaluator = dict(type='ReportMetric', out_dir='auto')
