# Copyright (c) mmext contributors. All rights reserved.
"""BERT from a local Hugging Face folder, loaded without pickle code.

``BertModel.from_pretrained`` reads ``pytorch_model.bin`` through its own
``torch.load`` path and may reach the network. Here the folder's
``config.json`` builds a :class:`transformers.BertModel` and the weights come
from ``model.safetensors`` (preferred) or ``pytorch_model.bin`` through
:func:`mmext.utils.checkpoint.safe_torch_load`. ``transformers`` is imported
lazily so ``import mmext`` stays fast.

The caption tokenizer is registered in ``TOKENIZER`` as
``'BertTokenizerFromFolder'``: data pipelines (``TokenizeCaption``) build it
through the registry, so ``mmext.datasets`` never imports this module.
mmpretrain's registered Hugging Face tokenizers (``BertTokenizerFast`` ...)
load through ``from_pretrained`` (a hub name, the network); this one reads
the same local folder as the text stream, found by :func:`find_bert_folder`.
"""
import json
import os
import os.path as osp
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Tuple

from mmext.models.utils.checkpoint_convert.common import rename_layernorm
from mmext.registry import TOKENIZER
from mmext.utils.checkpoint import safe_torch_load
from mmext.utils.paths import project_root

if TYPE_CHECKING:  # imported lazily at run time
    from transformers import BertModel, BertTokenizerFast

__all__ = [
    'find_bert_folder', 'build_bert', 'build_bert_tokenizer',
    'load_hf_state_dict', 'BERT_HOWTO', 'TINY_BERT'
]

#: the 2-layer, 32-d BERT of the tiny configs' generated folders
#: (``mmext.testing.make_bert_folder``); complexity analysis assumes this
#: shape for such a folder when it is not on disk
TINY_BERT = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=64,
    type_vocab_size=2)

BERT_HOWTO = (
    'download the Hugging Face folder bert-base-uncased (config.json, '
    'vocab.txt, model.safetensors) into pretrain_pth/bert-base-uncased/, '
    'e.g. `huggingface-cli download google-bert/bert-base-uncased '
    'config.json vocab.txt tokenizer_config.json model.safetensors '
    '--local-dir pretrain_pth/bert-base-uncased`')


def find_bert_folder(folder: str) -> str:
    """Resolve a BERT folder: as given (absolute or from the current
    directory), then ``pretrain_pth/<folder>`` under the current directory,
    the project root and ``$MMEXT_PRETRAIN_DIR``.

    Raises:
        FileNotFoundError: No such folder with a ``config.json``; the message
            names every place searched and how to get the folder.
    """
    p = Path(folder).expanduser()
    candidates = [p] if p.is_absolute() else [Path.cwd() / p]
    if not p.is_absolute():
        name = p.parts[1:] if p.parts[:1] == ('pretrain_pth', ) else p.parts
        bases = [Path.cwd(), project_root()]
        if os.environ.get('MMEXT_PRETRAIN_DIR'):
            bases.append(Path(os.environ['MMEXT_PRETRAIN_DIR']))
        candidates += [b / 'pretrain_pth' / Path(*name) for b in bases[:2]]
        candidates += [b / Path(*name) for b in bases[2:]]
    for c in candidates:
        if (c / 'config.json').is_file():
            return str(c)
    raise FileNotFoundError(
        f'ViLBERT: BERT folder {str(folder)!r} (with config.json) not found '
        f'in {", ".join(str(c) for c in candidates)}; {BERT_HOWTO}')


def load_hf_state_dict(folder: str) -> dict:
    """The folder's weights: ``model.safetensors`` or ``pytorch_model.bin``
    (weights-only, allowlisted)."""
    st = osp.join(folder, 'model.safetensors')
    if osp.isfile(st):
        from safetensors.torch import load_file
        return load_file(st)
    pt = osp.join(folder, 'pytorch_model.bin')
    if osp.isfile(pt):
        return safe_torch_load(pt, map_location='cpu')
    raise FileNotFoundError(
        f'ViLBERT: {folder} has config.json but neither model.safetensors '
        f'nor pytorch_model.bin; {BERT_HOWTO}')


def build_bert(folder: Optional[str] = None,
               config: Optional[dict] = None,
               load_weights: bool = True) -> Tuple['BertModel', dict]:
    """A :class:`transformers.BertModel` (no pooler) and the MLM-head
    weights found next to it.

    Args:
        folder (str, optional): Hugging Face BERT folder (see
            :func:`find_bert_folder`).
        config (dict, optional): ``BertConfig`` keyword arguments; without a
            folder this builds a randomly initialised BERT (tests), with one
            it overrides the folder's config (e.g. dropout).
        load_weights (bool): Load the folder's weights. Defaults to True.

    Returns:
        tuple: ``(BertModel, mlm_state)`` where ``mlm_state`` holds
        ``cls.predictions.*`` tensors of a pre-training checkpoint (keys
        without the prefix; empty if absent).
    """
    from transformers import BertConfig, BertModel
    if folder is None and config is None:
        raise ValueError('ViLBERT: text stream needs folder= (a Hugging Face '
                         f'BERT folder) or config= (a BertConfig dict); '
                         f'{BERT_HOWTO}')
    if folder is not None:
        folder = find_bert_folder(folder)
        with open(osp.join(folder, 'config.json')) as f:
            cfg = json.load(f)
        cfg.update(config or {})
    else:
        cfg = dict(config)
    bert_cfg = BertConfig(**cfg)
    model = BertModel(bert_cfg, add_pooling_layer=False)
    mlm_state = {}
    if folder is not None and load_weights:
        state, own = load_hf_state_dict(folder), {}
        for k, v in state.items():
            k = rename_layernorm(k)  # bert-base-uncased: gamma / beta
            if k.startswith('cls.predictions.'):
                mlm_state[k[len('cls.predictions.'):]] = v
            elif not k.startswith(('cls.', 'pooler.', 'bert.pooler.')):
                own[k[5:] if k.startswith('bert.') else k] = v
        missing, unexpected = model.load_state_dict(own, strict=False)
        # old checkpoints carry the (now non-persistent) position_ids
        missing = [k for k in missing if not k.endswith('position_ids')]
        unexpected = [k for k in unexpected if not k.endswith('position_ids')]
        if missing or unexpected:
            raise ValueError(
                f'ViLBERT: the BERT weights in {folder} do not match its '
                f'config.json: missing {missing[:3]}, unexpected '
                f'{unexpected[:3]}; re-download the folder ({BERT_HOWTO})')
    return model, mlm_state


@TOKENIZER.register_module(name='BertTokenizerFromFolder')
def build_bert_tokenizer(folder: str) -> 'BertTokenizerFast':
    """``BertTokenizerFast`` from the folder's ``vocab.txt`` (lower-casing
    from ``tokenizer_config.json`` when present, else True).

    Registered in ``TOKENIZER`` as ``'BertTokenizerFromFolder'``, so a
    pipeline builds it as
    ``TOKENIZER.build(dict(type='BertTokenizerFromFolder', folder=...))``.

    Args:
        folder (str): Hugging Face BERT folder, resolved by
            :func:`find_bert_folder`.

    Returns:
        transformers.BertTokenizerFast
    """
    from transformers import BertTokenizerFast
    folder = find_bert_folder(folder)
    vocab = osp.join(folder, 'vocab.txt')
    if not osp.isfile(vocab):
        raise FileNotFoundError(f'ViLBERT: {folder} has no vocab.txt; '
                                f'{BERT_HOWTO}')
    lower = True
    tok_cfg = osp.join(folder, 'tokenizer_config.json')
    if osp.isfile(tok_cfg):
        with open(tok_cfg) as f:
            lower = json.load(f).get('do_lower_case', True)
    return BertTokenizerFast(vocab_file=vocab, do_lower_case=lower)
