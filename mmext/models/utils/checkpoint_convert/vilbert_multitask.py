# Copyright (c) mmext contributors. All rights reserved.
"""vilbert-multi-task checkpoints -> :class:`ViLBERT` in regions mode.

facebookresearch/vilbert-multi-task releases ``pretrained_model.bin``
(``BertForMultiModalPreTraining`` on Conceptual Captions) and
``multi_task_model.bin`` (``VILBertForVLTasks``, 12 tasks, trained with
task tokens), both plain ``state_dict()`` files with ``bert.*`` / ``cls.*``
keys for ``config/bert_base_6layer_6conect.json``. Every key is mapped by
an explicit rule or dropped by name; any other key fails the conversion.

What maps (reference -> mmext): ``bert.embeddings`` -> ``bert.embeddings``
and ``bert.encoder.layer`` -> ``bert.encoder.layer`` (same
``transformers`` names); ``bert.v_embeddings`` (``image_embeddings``,
``image_location_embeddings``, ``LayerNorm``) -> ``visual.feat_embed`` /
``loc_embed`` / ``norm`` of :class:`RegionVisualStream`;
``bert.encoder.v_layer`` -> ``visual.layers`` (``BertImageLayer`` has
``transformers.BertLayer``'s names); ``bert.encoder.c_layer`` -> ``coattn``
(:data:`COATTN_KEYS`; ``CoAttentionLayer(norm='post')``);
``bert.t_pooler`` / ``bert.v_pooler`` -> ``text_pool`` / ``vision_pool``;
``cls.predictions`` -> ``mlm_head`` (decoder tied to the word embeddings in
both); ``cls.bi_seq_relationship`` -> ``itm_head.fc`` with its two rows
swapped (there label 1 = random caption, here 1 = matched);
``cls.imagePredictions`` -> ``region_head``.

What does not: ``biOutput.q_dense1/2`` (never used by the reference's
forward) and the ``VILBertForVLTasks`` task heads (:data:`TASK_HEADS`) are
dropped and reported. ``bert.embeddings.task_embeddings`` is dropped too:
with ``--task_specific_tokens`` the reference inserts a task token after
[CLS] (no position / type embedding); mmext's text stream has no such
token, so a multi-task model's features here are those of its weights
without the task token, not the reference's for any task id. The image
attention's ``dyLinear_q/k`` (``dynamic_attention``, off in every released
config) are refused: :class:`RegionVisualStream` has no gate. Where the
structure matches, outputs are equal (``tests/test_tools/
test_vilbert_multitask_converter.py``): the mean "global" region that the
reference's data sets prepend is prepended by :class:`RegionVisualStream`.
"""
import copy
import re
from collections import OrderedDict

import torch

from .common import (Action, CheckpointConversionError, Rule,
                     compare_state_dict, match_rules, rename_layernorm,
                     strip_prefix, unwrap_state_dict)

__all__ = [
    'COATTN_KEYS', 'TASK_HEADS', 'ViLBERTConversionError',
    'convert_vilbert_multitask', 'check_against_config',
    'check_reference_config', 'unwrap_vilbert_checkpoint',
    'convert_vilbert_multitask_file', 'summarize_keys', 'RULES'
]

#: ``BertConnectionLayer`` module -> :class:`CoAttentionLayer` module
#: (stream 1 of the reference is the image, stream 2 the text)
COATTN_KEYS = {
    'biattention.query1': 'vision_q',
    'biattention.key1': 'vision_k',
    'biattention.value1': 'vision_v',
    'biattention.query2': 'text_q',
    'biattention.key2': 'text_k',
    'biattention.value2': 'text_v',
    'biOutput.dense1': 'vision_proj',
    'biOutput.LayerNorm1': 'vision_norm',
    'biOutput.dense2': 'text_proj',
    'biOutput.LayerNorm2': 'text_norm',
    'biOutput.q_dense1': None,
    'biOutput.q_dense2': None,
    'v_intermediate.dense': 'vision_ffn.fc1',
    'v_output.dense': 'vision_ffn.fc2',
    'v_output.LayerNorm': 'vision_ffn.norm',
    't_intermediate.dense': 'text_ffn.fc1',
    't_output.dense': 'text_ffn.fc2',
    't_output.LayerNorm': 'text_ffn.norm',
}
#: ``VILBertForVLTasks`` heads (VQA, GQA, NLVR2, retrieval / grounding,
#: SNLI-VE, region and token logits): no mmext module holds them
TASK_HEADS = ('vil_prediction', 'vil_prediction_gqa', 'vil_binary_prediction',
              'vil_logit', 'vil_tri_prediction', 'vision_logit',
              'linguisic_logit')
_PARAM = r'(weight|bias)'
_C_LAYER = r'bert\.encoder\.c_layer\.(\d+)\.'
#: reference key -> mmext key (or dropped / refused / tied), first match
RULES = [
    Rule(
        r'bert\.embeddings\.((word|position|token_type)_embeddings\.weight|'
        r'LayerNorm\.' + _PARAM + ')', r'bert.embeddings.\1'),
    Rule(r'bert\.embeddings\.task_embeddings\.weight', action=Action.DROP),
    Rule(r'bert\.encoder\.layer\.(\d+\..+)', r'bert.encoder.layer.\1'),
    Rule(
        r'bert\.encoder\.v_layer\.\d+\.attention\.self\.dyLinear_[qk]\..+',
        action=Action.REFUSE),
    Rule(r'bert\.encoder\.v_layer\.(\d+\..+)', r'visual.layers.\1'),
    Rule(r'bert\.v_embeddings\.image_embeddings\.' + _PARAM,
         r'visual.feat_embed.\1'),
    Rule(r'bert\.v_embeddings\.image_location_embeddings\.' + _PARAM,
         r'visual.loc_embed.\1'),
    Rule(r'bert\.v_embeddings\.LayerNorm\.' + _PARAM, r'visual.norm.\1'),
] + [
    Rule(_C_LAYER + re.escape(src) + r'\.' + _PARAM, rf'coattn.\1.{dst}.\2'
         if dst else None, Action.RENAME if dst else Action.DROP)
    for src, dst in COATTN_KEYS.items()
] + [
    Rule(r'bert\.t_pooler\.dense\.' + _PARAM, r'text_pool.\1'),
    Rule(r'bert\.v_pooler\.dense\.' + _PARAM, r'vision_pool.\1'),
    Rule(r'cls\.predictions\.transform\.(dense|LayerNorm)\.' + _PARAM,
         r'mlm_head.transform.\1.\2'),
    Rule(r'cls\.predictions\.bias', 'mlm_head.bias'),
    Rule(r'cls\.predictions\.decoder\.weight', action=Action.TIED),
    Rule(r'cls\.bi_seq_relationship\.' + _PARAM, r'itm_head.fc.\1'),
    Rule(r'cls\.imagePredictions\.transform\.(dense|LayerNorm)\.' + _PARAM,
         r'region_head.transform.\1.\2'),
    Rule(r'cls\.imagePredictions\.decoder\.' + _PARAM, r'region_head.fc.\1'),
    Rule(r'(' + '|'.join(TASK_HEADS) + r')\..+', action=Action.DROP),
]
#: mmext heads a fine-tuning model (losses off) does not have
HEAD_PREFIXES = ('mlm_head.', 'itm_head.', 'region_head.')


class ViLBERTConversionError(CheckpointConversionError):
    """The input is not a vilbert-multi-task checkpoint mmext can hold, or
    it does not fit the config."""


def unwrap_vilbert_checkpoint(obj, source='checkpoint'):
    """The state dict in a ``pytorch_model_*.bin`` (the dict itself) or a
    ``pytorch_ckpt_*.tar`` (``model_state_dict``), DataParallel ``module.``
    prefixes and old ``gamma`` / ``beta`` LayerNorm names undone (as the
    reference's ``from_pretrained`` does)."""
    obj = unwrap_state_dict(obj, ('model_state_dict', 'state_dict'))
    if not isinstance(obj, dict) or not all(
            isinstance(v, torch.Tensor) for v in obj.values()):
        raise ViLBERTConversionError(
            f'{source}: not a state dict (or a dict with model_state_dict); '
            'give vilbert-multi-task\'s pretrained_model.bin, '
            'multi_task_model.bin or a pytorch_model_<epoch>.bin')
    return OrderedDict(
        (rename_layernorm(strip_prefix(k)), v) for k, v in obj.items())


def convert_vilbert_multitask(state_dict, source='checkpoint'):
    """Reference keys -> :class:`ViLBERT` keys.

    Args:
        state_dict (dict): A vilbert-multi-task state dict (see
            :func:`unwrap_vilbert_checkpoint`).
        source (str): Name for messages. Defaults to 'checkpoint'.

    Returns:
        tuple: ``(OrderedDict, dropped)`` -- the mmext state dict and the
        sorted reference keys left out (task heads, task embeddings,
        ``q_dense*``).

    Raises:
        ViLBERTConversionError: A key no rule covers, ``dyLinear`` keys, a
            decoder not tied to the word embeddings, or no ``bert.`` keys.
    """
    res = match_rules(state_dict, RULES)
    out, dropped, unknown, refused = (OrderedDict(res.out), res.dropped,
                                      res.unknown, res.refused)
    if refused:
        raise ViLBERTConversionError(
            f'{source}: {refused[0]} (dynamic_attention=True) gates the image '
            'attention by the text; RegionVisualStream has no such gate, so '
            'this model cannot be converted')
    if unknown:
        raise ViLBERTConversionError(
            f'{source}: {len(unknown)} keys are not vilbert-multi-task '
            f'BertForMultiModalPreTraining / VILBertForVLTasks keys (first: '
            f'{", ".join(unknown[:3])}); is it a vilbert-multi-task '
            'checkpoint (config/bert_base_*conect.json)?')
    word = state_dict.get('bert.embeddings.word_embeddings.weight')
    if word is None or 'visual.feat_embed.weight' not in out:
        raise ViLBERTConversionError(
            f'{source}: no bert.embeddings.word_embeddings / '
            'bert.v_embeddings keys; not a vilbert-multi-task checkpoint')
    decoder = state_dict.get('cls.predictions.decoder.weight')
    if decoder is not None and decoder is not word and not torch.equal(
            decoder, word):
        raise ViLBERTConversionError(
            f'{source}: cls.predictions.decoder.weight differs from the word '
            'embeddings; mmext\'s MLM head is tied to them (as the '
            'reference\'s), so an untied decoder cannot be kept')
    for param in ('weight', 'bias'):
        key = f'itm_head.fc.{param}'
        if key in out:  # reference row 0 = matched, mmext row 1 = matched
            out[key] = out[key].flip(0).contiguous()
    return out, sorted(dropped)


def _build(model_cfg):
    """(top model, its ViLBERT) on the meta device: shapes, no memory."""
    from mmext.registry import MODELS
    from mmext.utils import register_all_modules
    register_all_modules()
    model_cfg = copy.deepcopy(model_cfg)
    vil = model_cfg.get('vilbert', model_cfg)
    vil['text'] = dict(vil['text'], load_weights=False)
    vil.pop('init_cfg', None)
    with torch.device('meta'):
        model = MODELS.build(model_cfg)
    return model, getattr(model, 'vilbert', model)


def check_against_config(state_dict, config, strict=True):
    """Compare every key and shape with the config's ViLBERT.

    Args:
        state_dict (dict): Converted (mmext) state dict.
        config (str | Config): A ``ViLBERT`` or ``ViLBERTClassifier`` config
            in regions mode (its BERT folder's ``config.json`` is read, not
            its weights).
        strict (bool): Raise on a difference. Defaults to True.

    Returns:
        dict: ``missing`` / ``unexpected`` / ``mismatched`` (empty when it
        passes), ``unused`` (pre-training heads the config does not build)
        and ``model`` (the ViLBERT, on the meta device).

    Raises:
        ViLBERTConversionError: Anything missing, unexpected or of another
            shape; the message names the first and the config field.
    """
    from mmengine.config import Config
    name = config if isinstance(config, str) else 'config'
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    _, vilbert = _build(cfg.model)
    if not vilbert.regions:
        raise ViLBERTConversionError(
            f'{name}: the visual stream is '
            f'{type(vilbert.visual).__name__}; vilbert-multi-task weights '
            'need a RegionVisualStream config (e.g. configs/vilbert/'
            'vilbert_regions-bert-base_1xb20-pretrain_cc.py)')
    res = compare_state_dict(
        vilbert, state_dict, HEAD_PREFIXES, 'config', model_order=True)
    res['model'] = vilbert
    # report keys (summarize_keys), not the shape strings
    descriptions, res['mismatched'] = res['mismatched'], res.pop(
        'mismatched_keys')
    if strict and (res['missing'] or res['unexpected'] or res['mismatched']):
        first = (descriptions + res['missing'] + res['unexpected'])[0]
        raise ViLBERTConversionError(
            f'{name}: {len(res["missing"])} missing, '
            f'{len(res["unexpected"])} unexpected and '
            f'{len(res["mismatched"])} mismatched keys (first: {first}); '
            'set the regions-mode sizes as config/bert_base_6layer_6conect.'
            'json (visual: RegionVisualStream embed_dims / num_layers / '
            'ffn_dims, coattention bi_dims / vision_ffn_dims, pooled_dims)')
    return res


def check_reference_config(ref_config, vilbert):
    """Compare what shapes cannot show -- head counts and the co-attention
    schedule -- with the reference's JSON config.

    Args:
        ref_config (dict): The reference config (e.g. the contents of
            ``config/bert_base_6layer_6conect.json``).
        vilbert (ViLBERT): The model from :func:`check_against_config`.

    Raises:
        ViLBERTConversionError: The first field that differs.
    """
    coattn = vilbert.coattn[0] if len(vilbert.coattn) else None
    pairs = [
        ('num_attention_heads', vilbert.bert.config.num_attention_heads,
         'the BERT folder\'s config.json num_attention_heads'),
        ('v_num_attention_heads',
         vilbert.visual.layers[0].attention.self.num_attention_heads
         if vilbert.visual.num_layers else None, 'model.visual.num_heads'),
        ('bi_num_attention_heads', coattn.num_heads if coattn else None,
         'model.coattention.num_heads'),
        ('t_biattention_id', vilbert.text_ids, 'model.coattention.text_ids'),
        ('v_biattention_id', vilbert.vision_ids,
         'model.coattention.vision_ids'),
    ]
    for key, ours, field in pairs:
        if key in ref_config and ref_config[key] != ours:
            raise ViLBERTConversionError(
                f'the reference config has {key}={ref_config[key]} but the '
                f'mmext config gives {ours}; set {field} to match')
    if coattn is not None and coattn.norm_type != 'post':
        raise ViLBERTConversionError(
            "vilbert-multi-task's co-attention is post-LN; set "
            "model.coattention.norm='post'")


def summarize_keys(keys, limit=12):
    """Keys grouped by module, layer indices as ``*``: ``'a.0.x.weight',
    'a.1.x.bias'`` -> ``'a.*.x (2)'``; one short line for a report (``-``
    for none)."""
    groups = OrderedDict()
    for k in keys:
        g = re.sub(r'\.\d+(?=\.|$)', '.*', k)
        g = re.sub(r'\.(weight|bias)$', '', g)
        groups[g] = groups.get(g, 0) + 1
    items = [f'{g} ({n})' if n > 1 else g for g, n in groups.items()]
    more = f', ... {len(items) - limit} more' if len(items) > limit else ''
    return ', '.join(items[:limit]) + more if items else '-'


def convert_vilbert_multitask_file(src,
                                   dst,
                                   config=None,
                                   ref_config=None,
                                   log=print):
    """Read ``src`` (only through :func:`~mmext.utils.safe_torch_load`),
    convert, check against ``config`` / ``ref_config`` and write ``dst`` as
    ``dict(state_dict=..., meta=...)`` -- loadable as ``load_from`` of a
    :class:`ViLBERT` config and as ``model.vilbert.init_cfg=dict(
    type='Pretrained', checkpoint=dst)`` of a :class:`ViLBERTClassifier`.
    Nothing is written when a check fails.

    Args:
        src (str): vilbert-multi-task checkpoint.
        dst (str): Output path.
        config (str | Config, optional): mmext config for the key and shape
            check. Defaults to None (no check).
        ref_config (str | dict, optional): The reference's JSON config
            (``config/bert_base_6layer_6conect.json``) to check heads and
            the schedule against ``config``. Defaults to None.
        log (callable): Receives one report line at a time.

    Returns:
        dict: The converted state dict.
    """
    import json

    from mmext.utils import safe_torch_load
    state = unwrap_vilbert_checkpoint(safe_torch_load(src, 'cpu'), src)
    out, dropped = convert_vilbert_multitask(state, src)
    log(f'dropped ({len(dropped)}): {summarize_keys(dropped)}')
    if 'bert.embeddings.task_embeddings.weight' in state:
        log('note: trained with task tokens (multi_task_model.bin); mmext '
            'feeds none, so features differ from the reference\'s')
    if config is not None:
        res = check_against_config(out, config, strict=False)
        for key in ('missing', 'unexpected', 'mismatched'):
            log(f'{key} ({len(res[key])}): {summarize_keys(res[key])}')
        if res['unused']:
            log(f'not in this config\'s model (pre-training heads off), '
                f'kept in the file ({len(res["unused"])}): '
                f'{summarize_keys(res["unused"])}')
        check_against_config(out, config)
        if ref_config is not None:
            if isinstance(ref_config, str):
                with open(ref_config) as f:
                    ref_config = json.load(f)
            check_reference_config(ref_config, res['model'])
    elif ref_config is not None:
        raise ViLBERTConversionError(
            '--reference-config is compared with an mmext config; give '
            '--config too')
    meta = dict(
        converted_from=f'vilbert-multi-task {src}',
        dropped=dropped,
        itm_head='rows swapped: class 1 = matched')
    torch.save(dict(state_dict=out, meta=meta), dst)
    return out
