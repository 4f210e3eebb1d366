# Copyright (c) mmext contributors. All rights reserved.
"""The pre-run check (mmext.apis.prepare_config): misspelt keywords, BERT
folders, command-line checkpoints and monitored metric keys are found up
front, all at once, one line each."""
import os

import pytest
from mmengine.config import Config

from mmext.apis import ConfigError, prepare_config
from mmext.apis.cli import run_cli
from mmext.apis.prerun import (check_bert_folders, check_checkpoint_file,
                               check_monitored_metrics)
from mmext.apis.signature_check import accepted_arguments, check_arguments
from mmext.utils.checkpoint import CorruptCheckpointError
from tests.conftest import ROOT, TINY_CONFIG


def _tiny(**options):
    cfg = Config.fromfile(str(TINY_CONFIG))
    cfg.merge_from_dict(options)
    cfg.setdefault('default_scope', 'mmext')
    return cfg


class _Base:

    def __init__(self, depth, init_cfg=None):
        pass


class _PassesOn(_Base):

    def __init__(self, width, **kwargs):
        super().__init__(**kwargs)


class _Keeps(_Base):

    def __init__(self, width, **kwargs):
        super().__init__(depth=1)
        self.extra = kwargs  # destination unknown: accept anything


def test_accepted_arguments_follow_kwargs_up_the_mro():
    assert accepted_arguments(_PassesOn) == {'width', 'depth', 'init_cfg'}
    assert accepted_arguments(_Keeps) is None


@pytest.mark.parametrize(
    'option, line',
    [('model.backbone.depht', "model.backbone.depht: ResNet (mmpretrain) has "
      "no argument 'depht'; did you mean 'depth'?"),
     ('train_cfg.max_epoch', "train_cfg.max_epoch: EpochBasedTrainLoop "
      "(mmengine) has no argument 'max_epoch'; did you mean 'max_epochs'?"),
     ('optim_wrapper.optimizer.lrr', "optim_wrapper.optimizer.lrr: SGD "
      "(torch) has no argument 'lrr'; did you mean 'lr'?"),
     ('optim_wrapper.clip_gard', "optim_wrapper.clip_gard: OptimWrapper "
      "(mmengine) has no argument 'clip_gard'; did you mean 'clip_grad'?"),
     ('train_dataloader.batch_sizee', 'train_dataloader.batch_sizee: '
      "DataLoader (torch) has no argument 'batch_sizee'; did you mean "
      "'batch_size'?"),
     ('model.head.loss.loss_weigth', "model.head.loss.loss_weigth: "
      "CrossEntropyLoss (mmpretrain) has no argument 'loss_weigth'; did you "
      "mean 'loss_weight'?"),
     ('default_hooks.logger.intervall', 'default_hooks.logger.intervall: '
      "LoggerHook (mmengine) has no argument 'intervall'; did you mean "
      "'interval'?"),
     ('param_scheduler.T_maxx', "param_scheduler.T_maxx: CosineAnnealingLR "
      "(mmengine) has no argument 'T_maxx'; did you mean 'T_max'?")])
def test_misspelt_keyword_named_with_its_path(option, line):
    assert check_arguments(_tiny(**{option: 1})) == [line]


def test_builder_keys_are_not_reported():
    cfg = _tiny(
        custom_hooks=[dict(type='EMAHook', priority='ABOVE_NORMAL')],
        param_scheduler=dict(convert_to_iter_based=True))
    cfg.model.backbone.norm_cfg = dict(type='BN', requires_grad=True)
    cfg.model.backbone.init_cfg = dict(
        type='Kaiming', layer='Conv2d', override=dict(name='conv1'))
    assert check_arguments(cfg) == []


def test_untyped_train_cfg_needs_by_epoch():
    cfg = _tiny()
    cfg.train_cfg = dict(max_epochs=2)
    assert check_arguments(cfg) == [
        "train_cfg: give type='EpochBasedTrainLoop' (or another loop) or "
        'by_epoch=True/False'
    ]
    cfg.train_cfg = dict(by_epoch=False, max_iters=2, max_epochs=2)
    assert check_arguments(cfg) == [
        "train_cfg.max_epochs: IterBasedTrainLoop (mmengine) has no "
        "argument 'max_epochs'; did you mean 'max_iters'?"
    ]


def test_vilbert_sub_dicts_are_checked():
    cfg = Config.fromfile(
        str(ROOT / 'configs/vilbert/'
            'vilbert-cls_tiny_1xb4-ft_tiny-hateful-memes.py'))
    cfg.model.vilbert.coattention.presett = 'thesis'
    cfg.model.vilbert.text.foldr = 'x'
    assert [m.split(':')[0] for m in check_arguments(cfg)] == [
        'model.vilbert.text.foldr', 'model.vilbert.coattention.presett'
    ]


def test_all_problems_one_line_each(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/tiny here
    cfg = _tiny(**{'model.backbone.depht': 18, 'train_cfg.max_epoch': 2})
    with pytest.raises(ConfigError) as e:
        prepare_config(cfg, mode='test', checkpoint='missing.pth')
    lines = str(e.value).splitlines()
    assert len(lines) == 4, lines
    assert lines[0].startswith('model.backbone.depht:')
    assert lines[1].startswith('train_cfg.max_epoch:')
    assert lines[2] == ('checkpoint missing.pth does not exist: check the '
                        'path (a training run writes work_dirs/<config>/'
                        'epoch_N.pth)')
    assert lines[3].startswith("test_dataloader: data_root 'data/tiny'")


def test_checkpoint_must_be_a_regular_file(tmp_path):
    good = tmp_path / 'a.pth'
    good.write_bytes(b'x')
    fifo = tmp_path / 'fifo.pth'
    os.mkfifo(fifo)
    assert check_checkpoint_file(str(good)) is None
    assert check_checkpoint_file('https://x/y.pth') is None
    assert 'is a directory, not a regular file' in check_checkpoint_file(
        str(tmp_path))
    assert 'is a FIFO' in check_checkpoint_file(str(fifo))
    assert 'does not exist' in check_checkpoint_file(str(tmp_path / 'no'))


def _vilbert_cfg(folder):
    return Config(
        dict(
            model=dict(type='ViLBERT', text=dict(folder=str(folder))),
            train_dataloader=dict(
                dataset=dict(
                    pipeline=[dict(type='TokenizeCaption', bert=str(folder))
                              ]))))


def test_bert_folder_missing_names_files_and_how_to_get_them(tmp_path):
    errors = check_bert_folders(_vilbert_cfg(tmp_path / 'nope'))
    assert len(errors) == 1  # one folder, named once
    assert errors[0].startswith('model.text.folder: ViLBERT: BERT folder')
    assert 'config.json, vocab.txt and model.safetensors' in errors[0]
    assert 'huggingface-cli download' in errors[0]


def test_bert_folder_without_weights_or_vocab(tmp_path):
    from mmext.testing.bert import make_bert_folder
    folder = make_bert_folder(tmp_path / 'bert', weights=None)
    errors = check_bert_folders(_vilbert_cfg(folder))
    assert len(errors) == 1 and 'has no model.safetensors' in errors[0]
    cfg = _vilbert_cfg(folder)
    cfg.model.text.load_weights = False
    assert check_bert_folders(cfg) == []
    (folder / 'vocab.txt').unlink()
    errors = check_bert_folders(cfg)
    # named once, where the config first gives it
    assert len(errors) == 1 and errors[0].startswith(
        'model.text.folder: BERT folder')
    assert 'has no vocab.txt' in errors[0]
    cfg.pop("train_dataloader")  # the model alone reads no vocab.txt
    assert check_bert_folders(cfg) == []


def test_tokenizer_dict_form_is_checked(tmp_path):
    """TokenizeCaption(tokenizer=dict(type='BertTokenizerFromFolder', ...)):
    the folder is checked like bert=, and a misspelt key inside the
    tokenizer dict is found through the TOKENIZER registry."""
    from mmext.testing.bert import make_bert_folder
    folder = make_bert_folder(tmp_path / 'bert', weights=None)
    (folder / 'vocab.txt').unlink()
    tok = dict(type='BertTokenizerFromFolder', folder=str(folder))
    cfg = Config(
        dict(
            train_dataloader=dict(
                dataset=dict(
                    pipeline=[dict(type='TokenizeCaption', tokenizer=tok)]))))
    errors = check_bert_folders(cfg)
    assert len(errors) == 1 and 'has no vocab.txt' in errors[0], errors
    assert errors[0].startswith('train_dataloader.dataset.pipeline.0.'
                                'tokenizer.folder:'), errors
    cfg.train_dataloader.dataset.pipeline[0].tokenizer.foldr = 'x'
    cfg.setdefault('default_scope', 'mmext')
    problems = check_arguments(cfg)
    assert any(
        p.startswith('train_dataloader.dataset.pipeline.0.tokenizer.foldr')
        for p in problems), problems


def test_monitored_metric_keys():
    cfg = _tiny(
        **{
            'default_hooks.checkpoint.save_best':
            'acc/top1',
            'custom_hooks': [
                dict(type='EarlyStoppingHook', monitor='accuracy/top1'),
                dict(type='EarlyStoppingHook', monitor='accuracy/top5')
            ],
            'param_scheduler': [dict(type='ReduceOnPlateauLR')]
        })
    errors = check_monitored_metrics(cfg)
    assert [e.split(':')[0] for e in errors] == [
        'default_hooks.checkpoint.save_best', 'custom_hooks.1.monitor',
        'param_scheduler.0.monitor'
    ]
    assert "did you mean 'accuracy/top1'?" in errors[0]
    assert "'loss' is not a validation metric" in errors[2]  # the default
    cfg.val_cfg = None  # --no-validate: nothing is monitored
    assert check_monitored_metrics(cfg) == []


def test_run_cli_one_line_or_traceback(capsys):

    def bad():
        raise CorruptCheckpointError('x.pth is not a checkpoint: re-save it')

    with pytest.raises(SystemExit) as e:
        run_cli(bad, prog='tools/t.py')
    assert e.value.code == 'tools/t.py: x.pth is not a checkpoint: re-save it'
    with pytest.raises(CorruptCheckpointError):
        run_cli(bad, prog='tools/t.py', debug=True)
    with pytest.raises(KeyError):  # a bug keeps its traceback
        run_cli(lambda: {}['x'])
