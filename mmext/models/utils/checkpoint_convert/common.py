# Copyright (c) mmext contributors. All rights reserved.
"""What every checkpoint converter shares: unwrapping, rule-based renaming
and the strict key / shape check against a model."""
import re

__all__ = [
    'CheckpointConversionError', 'unwrap_state_dict', 'apply_rules',
    'compare_state_dict', 'check_state_dict'
]


class CheckpointConversionError(ValueError):
    """A checkpoint does not have the layout its converter expects."""


def unwrap_state_dict(checkpoint):
    """The tensor dict inside a checkpoint (``state_dict`` / ``model`` key,
    as mmengine / timm training scripts save them, or the dict itself)."""
    for key in ('state_dict', 'model', 'state_dict_ema'):
        if isinstance(checkpoint, dict) and isinstance(
                checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint


def apply_rules(state_dict, rules, source, keep_head=True):
    """Rename every key with the first fully matching rule.

    Args:
        state_dict (dict): Source keys -> tensors.
        rules (list[tuple[str, str | callable]]): ``(regex, replacement)``;
            the replacement is a template (``\\1``) or a function of the
            match.
        source (str): The format's name, for the error message.
        keep_head (bool): Keep ``head.*`` outputs. Defaults to True.

    Raises:
        KeyError: Naming the keys no rule covers (nothing is silently
            dropped).
    """
    out, unknown = {}, []
    for key, value in state_dict.items():
        for pattern, repl in rules:
            match = re.fullmatch(pattern, key)
            if match:
                new = match.expand(repl) if isinstance(repl, str) else \
                    repl(match)
                break
        else:
            unknown.append(key)
            continue
        if new.startswith('head.') and not keep_head:
            continue
        out[new] = value
    if unknown:
        shown = ', '.join(unknown[:5]) + (' ...' if len(unknown) > 5 else '')
        raise KeyError(
            f'{source}: {len(unknown)} keys match no conversion rule '
            f'({shown}); is this a {source} checkpoint?')
    return out


def compare_state_dict(model, state_dict):
    """Keys of ``state_dict`` against ``model.state_dict()``.

    Args:
        model (nn.Module): The model the weights are meant for.
        state_dict (dict): Converted keys -> tensors.

    Returns:
        dict: ``missing`` and ``unexpected`` key lists, and ``mismatched``
        as ``'key: checkpoint (shape) vs model (shape)'`` strings; all
        empty when ``state_dict`` loads strictly.
    """
    own = model.state_dict()
    return dict(
        missing=[k for k in own if k not in state_dict],
        unexpected=[k for k in state_dict if k not in own],
        mismatched=[
            f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model '
            f'{tuple(own[k].shape)}' for k in state_dict
            if k in own and own[k].shape != state_dict[k].shape
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
