# Copyright (c) mmext contributors. All rights reserved.
"""vilbert-multi-task checkpoint -> mmext ViLBERT (regions mode).

``tests/data/vilbert_multitask_tiny.safetensors`` holds random float16
weights under the key names of vilbert-multi-task@f22b84a
``BertForMultiModalPreTraining.state_dict()`` for a tiny config (4 text
layers 24-d, 2 region layers 20-d, co-attention after text layers 2, 3 and
vision layers 0, 1 -- the released schedule's shape, 16-d / 2 heads).
``tests/data/vilbert_multitask_golden.json`` holds that config, fixed
inputs, and the reference model's outputs on them: computed once by
running the fetched reference code (``vilbert/vilbert.py``) on those
weights, with the mean region prepended at [0, 0, 1, 1, 1] as its data sets
do; also the key shapes of the released ``pretrained_model.bin`` /
``multi_task_model.bin`` for ``config/bert_base_6layer_6conect.json``
(reference model built on the meta device). Only values and key names are
stored; no reference code.
"""
import json

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint
from safetensors.torch import load_file

from mmext.models.multimodal.vilbert.convert import (ViLBERTConversionError,
                                                     check_against_config,
                                                     check_reference_config,
                                                     convert_vilbert_multitask,
                                                     unwrap_vilbert_checkpoint)
from mmext.registry import MODELS
from mmext.utils import register_all_modules
from tests.conftest import ROOT, run_tool

register_all_modules()
DATA = ROOT / 'tests/data'
GOLDEN = json.loads((DATA / 'vilbert_multitask_golden.json').read_text())
TOOL = ROOT / 'tools/model_converters/vilbert_multitask_to_mmext.py'
C = GOLDEN['config']
TINY = dict(
    type='ViLBERT',
    text=dict(
        config=dict(
            vocab_size=C['vocab_size'],
            hidden_size=C['hidden_size'],
            num_hidden_layers=C['num_hidden_layers'],
            num_attention_heads=C['num_attention_heads'],
            intermediate_size=C['intermediate_size'],
            max_position_embeddings=C['max_position_embeddings'],
            type_vocab_size=C['type_vocab_size'])),
    visual=dict(
        type='RegionVisualStream',
        feature_dims=C['v_feature_size'],
        embed_dims=C['v_hidden_size'],
        num_layers=C['v_num_hidden_layers'],
        num_heads=C['v_num_attention_heads'],
        ffn_dims=C['v_intermediate_size']),
    coattention=dict(
        text_ids=C['t_biattention_id'],
        vision_ids=C['v_biattention_id'],
        bi_dims=C['bi_hidden_size'],
        num_heads=C['bi_num_attention_heads'],
        text_ffn_dims=C['intermediate_size'],
        vision_ffn_dims=C['v_intermediate_size'],
        norm='post'),
    pooled_dims=C['bi_hidden_size'],
    fusion='mul',
    losses=dict(mlm=1.0, itm=1.0, mrm=1.0),
    num_region_classes=C['v_target_size'])
CLASSIFIER = dict(
    type='ViLBERTClassifier',
    vilbert=TINY,
    num_classes=1,
    task='binary',
    fusion='product',
    hidden_dims=8)
BERT_BASE = dict(
    vocab_size=30522,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    max_position_embeddings=512,
    type_vocab_size=2)
REGION_CONFIGS = sorted((ROOT / 'configs/vilbert').glob('*regions*.py'))


def reference_state(vl_tasks=False):
    """A state dict as the reference saves it: the decoder is the word
    embedding tensor; ``vl_tasks`` adds ``VILBertForVLTasks``'s extra keys
    (task heads, task embeddings) with random values."""
    sd = {
        k: v.float()
        for k, v in load_file(DATA /
                              'vilbert_multitask_tiny.safetensors').items()
    }
    sd['cls.predictions.decoder.weight'] = \
        sd['bert.embeddings.word_embeddings.weight']
    assert sorted(sd) == sorted(GOLDEN['tiny_pretraining_keys'])
    if vl_tasks:
        g = torch.Generator().manual_seed(0)
        for k, shape in GOLDEN['tiny_vl_tasks_extra_keys'].items():
            sd[k] = torch.randn(shape, generator=g)
    return sd


def golden(key):
    return torch.tensor(GOLDEN['outputs'][key])


def inputs():
    return {k: torch.tensor(v) for k, v in GOLDEN['inputs'].items()}


def outputs(model):
    """The reference's outputs from an mmext ViLBERT (ITM classes in the
    reference's order: 0 = matched)."""
    with torch.no_grad():
        f = model.eval().extract_feat(inputs())
        assert torch.equal(f['fused'], f['pooled_text'] * f['pooled_vision'])
        return dict(
            text=f['text'],
            vision=f['vision'],
            pooled_text=f['pooled_text'],
            pooled_vision=f['pooled_vision'],
            mlm_logits=model.mlm_head(f['text']),
            region_logits=model.region_head(f['vision'][:, 1:]),
            itm_logits=model.itm_head(f['fused']).flip(-1))


def max_error(model):
    out = outputs(model)
    err = {}
    for k, v in out.items():
        ref = golden(k)[:, 1:] if k == 'region_logits' else golden(k)
        err[k] = float((v - ref).abs().max())
    return err


def test_converted_weights_give_the_reference_outputs():
    converted, dropped = convert_vilbert_multitask(reference_state())
    assert all('q_dense' in k for k in dropped) and len(dropped) == 8
    model = MODELS.build(TINY)
    model.load_state_dict(converted, strict=True)
    err = max_error(model)
    assert max(err.values()) < 1e-5, err
    # a same-shape fault in the source (co-attention blocks swapped) is
    # seen by the comparison
    bad = reference_state()
    for k in [k for k in bad if '.c_layer.0.' in k]:
        k1 = k.replace('.c_layer.0.', '.c_layer.1.')
        bad[k], bad[k1] = bad[k1], bad[k]
    model.load_state_dict(convert_vilbert_multitask(bad)[0])
    err = max_error(model)
    assert err['text'] > 1e-3 and err['vision'] > 1e-3


def test_itm_rows_swapped_for_label_convention():
    sd = reference_state()
    converted, _ = convert_vilbert_multitask(sd)
    ref_w = sd['cls.bi_seq_relationship.weight']
    assert torch.equal(converted['itm_head.fc.weight'][1], ref_w[0])
    assert torch.equal(converted['itm_head.fc.weight'][0], ref_w[1])
    # the reference's "is random caption" probability = mmext's class 0
    model = MODELS.build(TINY)
    model.load_state_dict(converted)
    with torch.no_grad():
        logits = model.eval().itm_head(model.extract_feat(inputs())['fused'])
    assert torch.allclose(
        logits.softmax(-1)[:, 1],
        golden('itm_logits').softmax(-1)[:, 0],
        atol=1e-6)


def test_saved_forms_unwrap_to_the_same_keys():
    sd = reference_state()
    plain, _ = convert_vilbert_multitask(unwrap_vilbert_checkpoint(sd))
    old = {('module.' + k).replace('LayerNorm.weight',
                                   'LayerNorm.gamma').replace(
                                       'LayerNorm.bias', 'LayerNorm.beta'): v
           for k, v in sd.items()}
    tar = dict(model_state_dict=old, global_step=3, optimizer_state_dict={})
    again, _ = convert_vilbert_multitask(unwrap_vilbert_checkpoint(tar))
    assert list(again) == list(plain)
    assert all(torch.equal(again[k], plain[k]) for k in plain)
    with pytest.raises(ViLBERTConversionError, match='not a state dict'):
        unwrap_vilbert_checkpoint(['x'])


def test_cli_output_loads_as_load_from_and_init_cfg(tmp_path):
    src = tmp_path / 'multi_task_model.bin'
    torch.save(reference_state(vl_tasks=True), src)
    cfg = tmp_path / 'tiny_vilbert.py'
    Config(dict(model=TINY)).dump(cfg)
    ref_json = tmp_path / 'bert_tiny_2conect.json'
    ref_json.write_text(json.dumps(C))
    dst = tmp_path / 'out.pth'
    proc = run_tool(
        [TOOL, src, dst, '--config', cfg, '--reference-config', ref_json],
        cwd=tmp_path)
    lines = proc.stdout.splitlines()
    dropped = next(x for x in lines if x.startswith('dropped ('))
    for name in ('vil_prediction', 'vil_logit', 'linguisic_logit',
                 'task_embeddings', 'q_dense1'):
        assert name in dropped
    assert 'missing (0): -' in lines and 'unexpected (0): -' in lines
    assert any(x.startswith('note: trained with task tokens') for x in lines)
    assert lines[-1].startswith(f'wrote {dst}')

    model = MODELS.build(TINY)  # load_from of a ViLBERT config
    load_checkpoint(model, str(dst), strict=True)
    assert max(max_error(model).values()) < 1e-5
    # init_cfg of a ViLBERTClassifier's ViLBERT (pre-training heads off)
    clf = MODELS.build(
        dict(
            CLASSIFIER,
            vilbert=dict(
                TINY, init_cfg=dict(type='Pretrained', checkpoint=str(dst)))))
    clf.init_weights()
    with torch.no_grad():
        feats = clf.eval().vilbert.extract_feat(inputs())
    assert (feats['pooled_text'] - golden('pooled_text')).abs().max() < 1e-5
    assert (feats['pooled_vision'] - golden('pooled_vision')).abs().max() \
        < 1e-5


def test_cli_refuses_a_config_that_does_not_fit(tmp_path):
    src = tmp_path / 'pretrained_model.bin'
    torch.save(reference_state(), src)
    cfg = tmp_path / 'wide_ffn.py'
    wrong = dict(
        TINY, coattention=dict(TINY['coattention'], vision_ffn_dims=80))
    Config(dict(model=wrong)).dump(cfg)
    dst = tmp_path / 'out.pth'
    proc = run_tool([TOOL, src, dst, '--config', cfg],
                    cwd=tmp_path,
                    check=False)
    assert proc.returncode == 1 and not dst.exists()
    assert ('mismatched (6): coattn.*.vision_ffn.fc1 (4), '
            'coattn.*.vision_ffn.fc2 (2)') in proc.stdout.splitlines()
    err = [
        x for x in proc.stderr.splitlines()
        if x.startswith('vilbert_multitask_to_mmext:')
    ]
    assert len(err) == 1 and 'coattn.0.vision_ffn.fc1.weight: checkpoint ' \
        '(28, 20) vs config (80, 20)' in err[0]


@pytest.mark.parametrize('cfg_path', REGION_CONFIGS, ids=lambda p: p.name)
def test_region_configs_fit_the_released_checkpoints(cfg_path):
    """Every key and shape of the released pretrained_model.bin and
    multi_task_model.bin (bert_base_6layer_6conect.json) against the
    regions configs (BERT-base shapes for the text folder)."""
    sd = {
        k: torch.empty(v, device='meta')
        for k, v in GOLDEN['released_pretrained_model_keys'].items()
    }
    sd['cls.predictions.decoder.weight'] = \
        sd['bert.embeddings.word_embeddings.weight']
    sd.update({
        k: torch.empty(v, device='meta')
        for k, v in GOLDEN['released_multi_task_model_extra_keys'].items()
    })
    converted, dropped = convert_vilbert_multitask(sd)
    assert len(dropped) == 27 + 24  # task heads + embeddings, q_dense*
    cfg = Config.fromfile(str(cfg_path))
    model_cfg = cfg.model.get('vilbert', cfg.model)
    model_cfg.text = dict(config=BERT_BASE)
    res = check_against_config(converted, cfg)
    check_reference_config(GOLDEN['released_config'], res['model'])
    heads = {k.split('.')[0] for k in res['unused']}
    assert heads == ({'mlm_head', 'itm_head', 'region_head'}
                     if 'vilbert' in cfg.model else set())
    # what shapes cannot show: the schedule
    other = dict(
        GOLDEN['released_config'], t_biattention_id=[5, 6, 7, 8, 9, 10])
    with pytest.raises(
            ViLBERTConversionError, match='model.coattention.text_ids'):
        check_reference_config(other, res['model'])


def test_unmappable_checkpoints_refused():
    sd = reference_state()
    with pytest.raises(
            ViLBERTConversionError, match='bert.encoder.x_layer.0.weight'):
        convert_vilbert_multitask(
            dict(sd, **{'bert.encoder.x_layer.0.weight': torch.zeros(1)}))
    with pytest.raises(ViLBERTConversionError, match='dynamic_attention'):
        convert_vilbert_multitask(
            dict(
                sd, **{
                    'bert.encoder.v_layer.0.attention.self.dyLinear_q.weight':
                    torch.zeros(1)
                }))
    untied = dict(sd)
    untied['cls.predictions.decoder.weight'] = \
        untied['cls.predictions.decoder.weight'] + 1
    with pytest.raises(ViLBERTConversionError, match='tied'):
        convert_vilbert_multitask(untied)
    with pytest.raises(ViLBERTConversionError, match='not a vilbert'):
        convert_vilbert_multitask(
            {'bert.encoder.layer.0.output.dense.bias': torch.zeros(1)})
    patches = Config.fromfile(
        str(ROOT / 'configs/vilbert/vilbert_tiny_1xb4-pretrain_tiny-cc.py'))
    patches.model.text = TINY['text']
    with pytest.raises(ViLBERTConversionError, match='RegionVisualStream'):
        check_against_config(convert_vilbert_multitask(sd)[0], patches)
