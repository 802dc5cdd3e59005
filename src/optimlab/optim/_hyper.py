"""Hyperparameters declared once per class: in the constructor's signature.

An optimizer's constructor spells torch.optim's signature (the parameters in torch's order, then
optimlab's own switches, keyword-only) and hands its ``locals()`` to ``RuleOptimizer``. From that
one declaration follow:

* the defaults (``optimizer.defaults``, hence every param group's keys), in signature order;
* the checks, found by name (:mod:`._validate`);
* the rule's keyword arguments: each keyword of the rule function is read from the group under
  its own name, except ``step``, ``lr`` and ``beta1``/``beta2`` (from ``betas``), which the step
  supplies, and the names a class derives itself (``derived``, e.g. NAdam's ``mu``).

:func:`check_declaration` holds every class to this when it is defined, so that a
hyperparameter without a check, or a rule keyword nothing supplies, fails at import.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from ._validate import missing_checks

#: rule keywords the step supplies (not group keys)
STEP_SUPPLIED = ("step", "lr", "beta1", "beta2")

#: ``locals()`` entries of a constructor that are not hyperparameters
_NOT_HYPERPARAMETERS = ("self", "params", "__class__")


def defaults_from(constructor_locals: dict[str, Any]) -> dict[str, Any]:
    """A constructor's hyperparameters from its ``locals()`` (taken first thing, so that they
    hold exactly its arguments, in signature order)."""
    return {k: v for k, v in constructor_locals.items() if k not in _NOT_HYPERPARAMETERS}


def hyperparameter_defaults(cls: type, stop: type) -> dict[str, Any]:
    """Keyword -> default of ``cls(params, ...)``, in signature order (None where there is no
    default). A constructor that forwards ``**kwargs`` (``Momentum``) adds its base's, up to the
    class ``stop``; a subclass's default wins (``NAG``'s ``nesterov=True`` over ``SGD``'s). A
    constructor without ``**kwargs`` ends the walk: ``AdamW`` fixes ``Adam``'s
    ``decoupled_weight_decay`` and does not take it."""
    out: dict[str, Any] = {}
    for klass in cls.__mro__:
        if klass is stop or not issubclass(klass, stop):
            break
        if "__init__" not in vars(klass):
            continue
        params = list(inspect.signature(klass.__init__).parameters.values())[2:]
        for p in params:
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in out:
                out[p.name] = None if p.default is inspect.Parameter.empty else p.default
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return out


def hyperparameter_names(cls: type, stop: type) -> list[str]:
    """The keyword names ``cls(params, ...)`` accepts, in signature order."""
    return list(hyperparameter_defaults(cls, stop))


def rule_signature(rule: Callable[..., None]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(buffers, keywords)`` of a rule ``rule(params, grads, *buffers, **keywords)``."""
    params = list(inspect.signature(rule).parameters.values())
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    keywords = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
    return tuple(positional[2:]), tuple(keywords)


def check_declaration(cls: Any, stop: type) -> None:
    """Raise ``TypeError`` where a class's declaration is incomplete: a hyperparameter without a
    check, a rule whose state buffers are not the class's ``buffers``, or a rule keyword that is
    neither a hyperparameter, supplied by the step, nor derived by the class."""
    if cls.rule is None:
        return
    missing = missing_checks(hyperparameter_names(cls, stop), cls.checks)
    if missing:
        raise TypeError(f"{cls.__name__}: no check for hyperparameter(s) {missing}")
    buffers, keywords = rule_signature(cls.rule)
    if buffers != tuple(cls.buffers):
        raise TypeError(f"{cls.__name__}: the rule takes buffers {buffers}, not {cls.buffers}")
    # a subclass may fix a parent's hyperparameter (AdamW's decoupled weight decay): the
    # parent's constructor still puts it in the defaults
    names = {
        n
        for klass in cls.__mro__
        if isinstance(klass, type) and issubclass(klass, stop) and klass is not stop
        for n in hyperparameter_names(klass, stop)
    }
    known = {*names, *STEP_SUPPLIED, *cls.derived}
    unknown = [k for k in keywords if k not in known]
    if unknown:
        raise TypeError(f"{cls.__name__}: nothing supplies the rule's keyword(s) {unknown}")


def normalise(defaults: dict[str, Any]) -> dict[str, Any]:
    """Values as torch.optim stores them: ``betas`` a tuple, a 1-element tensor beta 0-d."""
    if "betas" in defaults:
        defaults["betas"] = tuple(
            b.squeeze() if isinstance(b, torch.Tensor) and b.dim() else b for b in defaults["betas"]
        )
    return defaults
