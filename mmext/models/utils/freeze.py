# Copyright (c) mmext contributors. All rights reserved.
"""One partial-freezing mechanism for every backbone.

mmpretrain gives each backbone its own ``frozen_stages`` with its own meaning
(ViT: 0 freezes nothing, ResNet: 0 freezes the stem, TinyViT never freezes its
``patch_embed``) and none of them can freeze by parameter name. Here a
backbone's parameters are split into a *stem* and *stages* by a rule chosen by
class (subclasses such as ``TRARViT`` inherit their parent's rule), and
``frozen_stages`` / ``frozen_patterns`` / ``unfreeze_patterns`` select what to
freeze. Parameter and state-dict names never change, so checkpoints and
``init_cfg=dict(type='Pretrained')`` load as before.

Frozen parameters get ``requires_grad=False``; every fully frozen sub-module
(BN / LN, dropout, drop-path inside it) is kept in eval mode across
``model.train()``, so running statistics and frozen features stay fixed.
"""
import fnmatch
import re
import types

__all__ = [
    'STAGE_RULES', 'register_stage_rule', 'backbone_stages', 'freeze_module',
    'is_kept_in_eval', 'count_parameters'
]

#: backbone class -> ``rule(module) -> (stem_prefixes, [stage_prefixes])``.
#: Looked up along the MRO, so subclasses use their parent's rule.
#:
#: A dict keyed by class, not an mmengine ``Registry``: a ``Registry`` maps
#: *names* (config ``type`` strings, per scope) to things it *builds*; here
#: nothing is built from a config, and the lookup must follow the class
#: hierarchy (``TRARViT`` -> ``VisionTransformer``, ``SEResNet`` ->
#: ``ResNet``), which name keys cannot do (a subclass registered under its
#: own name in another scope would miss its parent's rule). The class is
#: also the key users already hold (``type(module)``).
STAGE_RULES = {}


def register_stage_rule(cls):
    """Decorator registering a stage rule for ``cls`` and its subclasses.

    A rule returns ``(stem, stages)``: ``stem`` is a list of parameter-name
    prefixes (module or parameter names relative to the backbone), ``stages``
    a list with one such list per stage, in forward order.
    """

    def wrap(fn):
        STAGE_RULES[cls] = fn
        return fn

    return wrap


def _register_mmpretrain_rules():
    from mmpretrain.models.backbones import ResNet, TinyViT, VisionTransformer

    @register_stage_rule(VisionTransformer)
    def _vit(m):
        stem = ['cls_token', 'pos_embed', 'patch_embed', 'pre_norm']
        return stem, [[f'layers.{i}'] for i in range(len(m.layers))]

    @register_stage_rule(ResNet)  # also SEResNet, ResNetV1c/d, ResNeXt
    def _resnet(m):
        stem = ['stem'] if m.deep_stem else ['conv1', m.norm1_name]
        return stem, [[name] for name in m.res_layers]

    @register_stage_rule(TinyViT)
    def _tinyvit(m):
        return ['patch_embed'], [[f'stages.{i}'] for i in range(len(m.stages))]


_register_mmpretrain_rules()


def backbone_stages(module):
    """``(stem, stages)`` prefixes of ``module`` from :data:`STAGE_RULES`.

    Raises:
        TypeError: No rule for the module's class or any of its bases.
    """
    for cls in type(module).__mro__:
        if cls in STAGE_RULES:
            return STAGE_RULES[cls](module)
    known = ', '.join(sorted(c.__name__ for c in STAGE_RULES))
    raise TypeError(
        f'PartialFreeze: no stage rule for {type(module).__name__} (known: '
        f'{known}); freeze it with frozen_patterns=[...] instead of '
        'frozen_stages, or add a rule with mmext.models.utils.freeze.'
        'register_stage_rule')


def _under(name, prefix):
    return name == prefix or name.startswith(prefix + '.')


def _compile(pattern):
    """A glob (``fnmatch``), or a regex when written ``'re:<regex>'``."""
    if pattern.startswith('re:'):
        return re.compile(pattern[3:]).fullmatch
    regex = re.compile(fnmatch.translate(pattern))
    return regex.match


def _match(names, patterns, what, owner):
    """Names matched by any pattern; a pattern matching nothing is an
    error (a typo must not silently leave a model trainable)."""
    matched = set()
    for pattern in patterns:
        hits = set(filter(_compile(pattern), names))
        if not hits:
            raise ValueError(
                f'PartialFreeze: {what} pattern {pattern!r} matches no '
                f'parameter of {owner}; names look like {names[0]!r} and '
                f'{names[-1]!r} (glob, or "re:<regex>" for a regex)')
        matched |= hits
    return matched


def _stage_names(module, names, frozen_stages):
    if frozen_stages in (None, -1):
        return set()
    stem, stages = backbone_stages(module)
    owner = type(module).__name__
    if frozen_stages == 'all' or frozen_stages == len(stages):
        # the whole backbone, final norms included (as upstream ViT does
        # when every block is frozen)
        return set(names)
    if not isinstance(frozen_stages, int) or not \
            0 <= frozen_stages <= len(stages):
        raise ValueError(
            f'PartialFreeze: frozen_stages={frozen_stages!r} but {owner} has '
            f'{len(stages)} stages; use -1 (none), 0 (stem only), 1..'
            f"{len(stages)} (stem + first k stages) or 'all'")
    prefixes = stem + [p for stage in stages[:frozen_stages] for p in stage]
    return {n for n in names if any(_under(n, p) for p in prefixes)}


def _train_kept_in_eval(self, mode=True):
    # The class's own train() runs with mode=False, so modules that cache
    # state in eval (e.g. TinyViT's attention biases) stay consistent.
    type(self).train(self, False)
    return self


def is_kept_in_eval(module):
    """True if :func:`freeze_module` pinned ``module`` to eval mode."""
    return getattr(module.__dict__.get('train'), '__func__',
                   None) is _train_kept_in_eval


def _keep_in_eval(module):
    """Pin every maximal fully frozen sub-module of ``module`` to eval."""
    pinned = []

    def visit(name, mod):
        params = list(mod.parameters())
        if params and not any(p.requires_grad for p in params):
            mod.train = types.MethodType(_train_kept_in_eval, mod)
            mod.train()
            pinned.append(name)
            return
        for child_name, child in mod.named_children():
            visit(f'{name}.{child_name}' if name else child_name, child)

    visit('', module)
    return pinned


def freeze_module(module,
                  frozen_stages=-1,
                  frozen_patterns=(),
                  unfreeze_patterns=(),
                  eval_frozen=True):
    """Freeze parameters of ``module`` in place; names stay unchanged.

    The frozen set is ``stage(frozen_stages) | frozen_patterns -
    unfreeze_patterns``, over names relative to ``module`` (as in its
    ``state_dict``).

    Args:
        module (nn.Module): Usually a backbone.
        frozen_stages (int | str): -1 freezes nothing, 0 the stem (ViT:
            ``patch_embed``, ``cls_token``, ``pos_embed``; ResNet: ``conv1``
            + ``bn1``; TinyViT: ``patch_embed``), k the stem and the first k
            stages (ViT blocks, ResNet ``layer1..k``, TinyViT stages), and the
            number of stages or ``'all'`` the whole module. Defaults to -1.
        frozen_patterns (Sequence[str]): Extra parameter-name globs (or
            ``'re:<regex>'``) to freeze. Defaults to ().
        unfreeze_patterns (Sequence[str]): Names to keep trainable even when
            selected above (e.g. ``'*.ln*'`` to tune norms). Defaults to ().
        eval_frozen (bool): Keep fully frozen sub-modules in eval mode across
            ``train()``. Defaults to True.

    Returns:
        list[str]: The frozen parameter names, in ``named_parameters`` order.
    """
    if isinstance(frozen_patterns, str) or isinstance(unfreeze_patterns, str):
        raise TypeError('PartialFreeze: frozen_patterns / unfreeze_patterns '
                        "must be lists of patterns, e.g. ['layers.0.*']")
    params = dict(module.named_parameters())
    names = list(params)
    owner = type(module).__name__
    frozen = _stage_names(module, names, frozen_stages)
    frozen |= _match(names, frozen_patterns, 'frozen', owner)
    frozen -= _match(names, unfreeze_patterns, 'unfreeze', owner)
    for name in frozen:
        params[name].requires_grad_(False)
    if eval_frozen:
        _keep_in_eval(module)
    return [n for n in names if n in frozen]


def count_parameters(module):
    """``(trainable, total)`` numbers of parameter elements."""
    total = trainable = 0
    for p in module.parameters():
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total
