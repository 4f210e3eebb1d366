# Copyright (c) mmext contributors. All rights reserved.
"""A small Hugging Face BERT folder (config.json, vocab.txt, weights) with
random weights, in the layout ``pretrain_pth/bert-base-uncased/`` has."""
import json
from pathlib import Path

# a 2-layer, 32-d BERT config for tests (defined beside the text stream)
from mmext.models.multimodal.vilbert.text_stream import TINY_BERT

__all__ = ['TINY_BERT', 'make_bert_folder', 'CAPTION_WORDS']

#: words the generated captions use (all in the generated vocab)
CAPTION_WORDS = ('a red green blue square circle stripe dog cat photo of '
                 'the on in with and small large bright dark picture image '
                 'sunny stormy quiet loud old new city river meme kitchen '
                 'street car').split()


def make_bert_folder(path,
                     config=None,
                     weights='safetensors',
                     seed=0,
                     extra_words=()):
    """Write ``config.json``, ``vocab.txt`` and ``model.safetensors`` (or
    ``pytorch_model.bin`` with ``weights='bin'``, ``None`` for none).

    The vocabulary is the BERT special tokens, ``[unused0]``..
    ``[unused4]``, :data:`CAPTION_WORDS` and ``extra_words``, plus single
    letters so any lower-case word tokenises without [UNK].

    Returns:
        Path: The folder.
    """
    import torch
    from transformers import BertConfig, BertForPreTraining
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    letters = [chr(c) for c in range(ord('a'), ord('z') + 1)]
    vocab = (['[PAD]'] + [f'[unused{i}]' for i in range(5)] +
             ['[UNK]', '[CLS]', '[SEP]', '[MASK]', '.', ','] + letters +
             ['##' + c for c in letters])
    vocab += [w for w in (*CAPTION_WORDS, *extra_words) if w not in vocab]
    (path / 'vocab.txt').write_text('\n'.join(vocab) + '\n')
    cfg = dict(TINY_BERT, **(config or {}), vocab_size=len(vocab))
    (path / 'config.json').write_text(
        json.dumps(
            dict(cfg, model_type='bert',
                 architectures=['BertForPreTraining'])))
    (path / 'tokenizer_config.json').write_text(
        json.dumps(dict(do_lower_case=True)))
    if weights is None:
        return path
    torch.manual_seed(seed)
    model = BertForPreTraining(BertConfig(**cfg))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if weights == 'safetensors':
        from safetensors.torch import save_file
        state.pop('cls.predictions.decoder.weight', None)  # tied
        state.pop('cls.predictions.decoder.bias', None)
        save_file(state, str(path / 'model.safetensors'))
    elif weights == 'bin':
        torch.save(state, path / 'pytorch_model.bin')
    else:
        raise ValueError(f"make_bert_folder: weights={weights!r}; use "
                         "'safetensors', 'bin' or None")
    return path
