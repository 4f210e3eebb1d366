# Copyright (c) mmext contributors. All rights reserved.
"""What every checkpoint converter shares: the error hierarchy, unwrapping,
renaming by declared rules and the strict key / shape check.

Every converter of this package (classification, ViT ``.npz``, ViT-TRAR,
R2Gen, vilbert-multi-task, BUTD caffe) raises
:class:`CheckpointConversionError` subclasses for an input it cannot
convert, and declares its key mapping as :class:`Rule` data.
"""
import re
from collections import namedtuple
from enum import Enum

__all__ = [
    'CheckpointConversionError', 'UnknownKeysError', 'Action', 'Rule',
    'RuleResult', 'match_rules', 'apply_rules', 'unwrap_state_dict',
    'strip_prefix', 'rename_layernorm', 'compare_state_dict',
    'check_state_dict'
]


class CheckpointConversionError(ValueError):
    """A checkpoint does not have the layout its converter expects."""


class UnknownKeysError(CheckpointConversionError, KeyError):
    """Keys no conversion rule covers (a ``KeyError`` too, as before)."""

    def __str__(self):
        return self.args[0]


class Action(Enum):
    """What a matching :class:`Rule` does with a key."""
    RENAME = 'rename'  # keep the tensor under ``target``
    DROP = 'drop'  # leave it out (reported as dropped)
    REFUSE = 'refuse'  # the converter cannot hold it: an error
    TIED = 'tied'  # the same tensor as another key: checked, not kept


_Rule = namedtuple('Rule', ['pattern', 'target', 'action'])


class Rule(_Rule):
    """A key whose full match is ``pattern`` becomes ``target`` (a ``\\1``
    template or a function of the match) or gets ``action``.

    Example:
        >>> rule = Rule(r'fc\\.(weight|bias)', r'head.fc.\\1')
        >>> rule.action
        <Action.RENAME: 'rename'>
        >>> Rule(r'vil_logit\\..+', action=Action.DROP).target is None
        True
    """
    __slots__ = ()

    def __new__(cls, pattern, target=None, action=Action.RENAME):
        return super().__new__(cls, pattern, target, action)


#: the outcome of :func:`match_rules`
RuleResult = namedtuple('RuleResult',
                        ['out', 'dropped', 'refused', 'tied', 'unknown'])


def match_rules(state_dict, rules):
    """Apply the first fully matching rule to every key; raise nothing.

    Args:
        state_dict (dict): Source keys -> tensors.
        rules (Sequence[Rule | tuple]): :class:`Rule` s, or
            ``(pattern, target)`` pairs (renames).

    Returns:
        RuleResult: ``out`` (renamed keys -> tensors, in source order) and
        the source keys ``dropped``, ``refused``, ``tied`` and ``unknown``
        (matched by no rule).
    """
    rules = [r if isinstance(r, Rule) else Rule(*r) for r in rules]
    res = RuleResult({}, [], [], [], [])
    lists = {
        Action.DROP: res.dropped,
        Action.REFUSE: res.refused,
        Action.TIED: res.tied
    }
    for key, value in state_dict.items():
        for rule in rules:
            match = re.fullmatch(rule.pattern, key)
            if match:
                break
        else:
            res.unknown.append(key)
            continue
        if rule.action is not Action.RENAME:
            lists[rule.action].append(key)
        elif callable(rule.target):
            res.out[rule.target(match)] = value
        else:
            res.out[match.expand(rule.target)] = value
    return res


def apply_rules(state_dict, rules, source, keep_head=True):
    """Rename every key with the first fully matching rule.

    Args:
        state_dict (dict): Source keys -> tensors.
        rules (Sequence[Rule | tuple]): See :func:`match_rules`.
        source (str): The format's name, for the error message.
        keep_head (bool): Keep ``head.*`` outputs. Defaults to True.

    Raises:
        UnknownKeysError: Naming the keys no rule covers (nothing is
            silently dropped) or a refused key.
    """
    res = match_rules(state_dict, rules)
    if res.unknown or res.refused:
        bad = res.unknown or res.refused
        shown = ', '.join(bad[:5]) + (' ...' if len(bad) > 5 else '')
        what = 'match no conversion rule' if res.unknown else \
            'cannot be converted'
        raise UnknownKeysError(f'{source}: {len(bad)} keys {what} '
                               f'({shown}); is this a {source} checkpoint?')
    return {
        k: v
        for k, v in res.out.items() if keep_head or not k.startswith('head.')
    }


def unwrap_state_dict(checkpoint,
                      keys=('state_dict', 'model', 'state_dict_ema')):
    """The tensor dict inside a checkpoint: the first of ``keys`` holding a
    dict (as mmengine / timm training scripts save them), else the
    checkpoint itself."""
    for key in keys:
        if isinstance(checkpoint, dict) and isinstance(
                checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint


def strip_prefix(key, prefix='module.'):
    """``key`` without ``prefix`` (``nn.DataParallel``'s ``module.``)."""
    return key[len(prefix):] if key.startswith(prefix) else key


def rename_layernorm(key):
    """Old BERT / TF names ``LayerNorm[N].gamma`` / ``.beta`` ->
    ``.weight`` / ``.bias`` (what ``transformers``' ``from_pretrained``
    undoes; original ``bert-base-uncased`` and vilbert-multi-task files)."""
    key = re.sub(r'(LayerNorm\d?)\.gamma$', r'\1.weight', key)
    return re.sub(r'(LayerNorm\d?)\.beta$', r'\1.bias', key)


def compare_state_dict(model,
                       state_dict,
                       ignore=(),
                       target='model',
                       model_order=False):
    """Keys of ``state_dict`` against ``model.state_dict()``.

    Args:
        model (nn.Module): The model the weights are meant for (may be on
            the meta device: only shapes are read).
        state_dict (dict): Converted keys -> tensors.
        ignore (tuple[str]): Prefixes of ``state_dict`` keys the model may
            lack (reported as ``unused``). Defaults to ().
        target (str): What the model is, for ``mismatched``. Defaults to
            'model'.
        model_order (bool): List mismatched keys in the model's order, not
            the checkpoint's. Defaults to False.

    Returns:
        dict: ``missing``, ``unexpected`` and ``unused`` key lists,
        ``mismatched_keys`` and ``mismatched`` as ``'key: checkpoint
        (shape) vs model (shape)'`` strings; all but ``unused`` empty when
        ``state_dict`` loads strictly.
    """
    own = model.state_dict()
    bad = [
        k for k in (own if model_order else state_dict)
        if k in own and k in state_dict and own[k].shape != state_dict[k].shape
    ]
    extra = [k for k in state_dict if k not in own]
    return dict(
        missing=[k for k in own if k not in state_dict],
        unexpected=[k for k in extra if not k.startswith(ignore or ())],
        unused=[k for k in extra if ignore and k.startswith(ignore)],
        mismatched_keys=bad,
        mismatched=[
            f'{k}: checkpoint {tuple(state_dict[k].shape)} vs {target} '
            f'{tuple(own[k].shape)}' for k in bad
        ])


def check_state_dict(model, state_dict, source='checkpoint'):
    """Load ``state_dict`` strictly into ``model``, reporting first every
    missing, unexpected and mis-shaped key.

    Args:
        model (nn.Module): The model the weights are meant for.
        state_dict (dict): Converted keys -> tensors.
        source (str): What is checked, for the message. Defaults to
            'checkpoint'.

    Returns:
        nn.Module: ``model``, with the weights loaded.

    Raises:
        CheckpointConversionError: naming the counts and the keys.
    """
    res = compare_state_dict(model, state_dict)
    missing, unexpected, mismatched = (res['missing'], res['unexpected'],
                                       res['mismatched'])
    if missing or unexpected or mismatched:

        def show(keys):
            return ', '.join(keys[:6]) + (' ...' if len(keys) > 6 else '')

        raise CheckpointConversionError(
            f'{source}: {len(missing)} missing, {len(unexpected)} unexpected '
            f'and {len(mismatched)} mismatched keys against the model' +
            (f'; missing: {show(missing)}' if missing else '') +
            (f'; unexpected: {show(unexpected)}' if unexpected else '') +
            (f'; mismatched: {show(mismatched)}' if mismatched else ''))
    model.load_state_dict(state_dict, strict=True)
    return model
